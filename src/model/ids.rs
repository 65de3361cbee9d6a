//! Trace and span identifiers (W3C Trace Context): 16 and 8 bytes, never all zero,
//! read and written as lowercase hex everywhere outside the wire formats.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must be {expected} bytes, got {actual}")]
    Length {
        kind: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("{kind} must be {expected} hex digits, got {actual} characters")]
    HexLength {
        kind: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("{kind} has a non-hex character at position {position}")]
    NotHex { kind: &'static str, position: usize },
    #[error("{kind} must not be all zeros")]
    Zero { kind: &'static str },
}

macro_rules! hex_id {
    ($name:ident, $len:expr, $kind:expr) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            /// Accepts exactly the wire length; all zeros is invalid per W3C.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
                let array: [u8; $len] = bytes.try_into().map_err(|_| IdError::Length {
                    kind: $kind,
                    expected: $len,
                    actual: bytes.len(),
                })?;
                if array.iter().all(|b| *b == 0) {
                    return Err(IdError::Zero { kind: $kind });
                }
                Ok(Self(array))
            }

            /// Parses hex in either case; the canonical form written back is lowercase.
            pub fn from_hex(text: &str) -> Result<Self, IdError> {
                let bytes = text.as_bytes();
                if bytes.len() != $len * 2 {
                    return Err(IdError::HexLength {
                        kind: $kind,
                        expected: $len * 2,
                        actual: text.chars().count(),
                    });
                }
                let mut out = [0u8; $len];
                for (i, pair) in bytes.chunks_exact(2).enumerate() {
                    let hi = hex_value(pair[0]).ok_or(IdError::NotHex {
                        kind: $kind,
                        position: i * 2,
                    })?;
                    let lo = hex_value(pair[1]).ok_or(IdError::NotHex {
                        kind: $kind,
                        position: i * 2 + 1,
                    })?;
                    out[i] = (hi << 4) | lo;
                }
                Self::from_bytes(&out)
            }

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            pub fn to_hex(&self) -> String {
                to_hex(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::from_hex(s)
            }
        }
    };
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex, two digits per byte.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 0xf) as usize] as char);
    }
    out
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

hex_id!(TraceId, 16, "trace id");
hex_id!(SpanId, 8, "span id");

impl TraceId {
    /// A 64-bit key for the trace-ID index. Both halves are folded in because only some
    /// producers randomise the high half (W3C level 2 randomises the low 7 bytes).
    pub fn fingerprint(&self) -> u64 {
        let (hi, lo) = self.0.split_at(8);
        let hi = u64::from_be_bytes(hi.try_into().unwrap_or_default());
        let lo = u64::from_be_bytes(lo.try_into().unwrap_or_default());
        lo ^ hi.rotate_left(29)
    }
}

impl SpanId {
    /// The key of a span in the trace-ID index (profile samples are found by span).
    pub fn fingerprint(&self) -> u64 {
        u64::from_be_bytes(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn trace_id_hex_round_trip(bytes in any::<[u8; 16]>()) {
            prop_assume!(bytes.iter().any(|b| *b != 0));
            let id = TraceId::from_bytes(&bytes).unwrap();
            let hex = id.to_hex();
            prop_assert_eq!(hex.len(), 32);
            prop_assert_eq!(&hex, &hex.to_lowercase());
            prop_assert_eq!(TraceId::from_hex(&hex).unwrap(), id);
            prop_assert_eq!(TraceId::from_hex(&hex.to_uppercase()).unwrap(), id);
        }

        #[test]
        fn span_id_hex_round_trip(bytes in any::<[u8; 8]>()) {
            prop_assume!(bytes.iter().any(|b| *b != 0));
            let id = SpanId::from_bytes(&bytes).unwrap();
            prop_assert_eq!(SpanId::from_hex(&id.to_hex()).unwrap(), id);
        }

        #[test]
        fn hex_parser_never_panics(text in ".{0,40}") {
            let _ = TraceId::from_hex(&text);
            let _ = SpanId::from_hex(&text);
        }
    }

    #[test]
    fn rejects_wrong_lengths_zero_and_non_hex() {
        assert_eq!(
            TraceId::from_bytes(&[1; 15]),
            Err(IdError::Length {
                kind: "trace id",
                expected: 16,
                actual: 15
            })
        );
        assert_eq!(
            TraceId::from_bytes(&[0; 16]),
            Err(IdError::Zero { kind: "trace id" })
        );
        assert!(matches!(
            TraceId::from_hex("0123456789abcdef0123456789abcdeg"),
            Err(IdError::NotHex { position: 31, .. })
        ));
        assert!(matches!(
            SpanId::from_hex("abc"),
            Err(IdError::HexLength { .. })
        ));
    }
}
