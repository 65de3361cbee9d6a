//! A borrowing protobuf field reader for the hot ingest paths.
//!
//! Generated message types allocate a `String` per string field; a remote-write series
//! has a dozen of them and one sample. Reading the wire format directly lets the
//! decoder borrow every label from the request body and allocate nothing per label.
//! The reader understands the wire format only; each decoder says which fields it
//! wants and skips the rest, as protobuf requires of unknown fields. Unlike prost it
//! refuses groups (wire types 3 and 4), which no message it reads contains.

/// A malformed protobuf encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub &'static str);

/// One field's payload, by wire type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Value<'a> {
    pub fn bytes(self) -> Result<&'a [u8], WireError> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(WireError("expected a length-delimited field")),
        }
    }

    pub fn string(self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError("string field is not UTF-8"))
    }

    pub fn double(self) -> Result<f64, WireError> {
        match self {
            Value::Fixed64(bits) => Ok(f64::from_bits(bits)),
            _ => Err(WireError("expected a double field")),
        }
    }

    /// `int64`: a varint whose bits are the two's complement value.
    pub fn int64(self) -> Result<i64, WireError> {
        match self {
            Value::Varint(v) => Ok(v as i64),
            _ => Err(WireError("expected a varint field")),
        }
    }
}

/// The fields of one message, in wire order.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Tags, lengths and small numbers are one byte.
        if let [byte @ 0..0x80, rest @ ..] = self.buf {
            self.buf = rest;
            return Ok(u64::from(*byte));
        }
        self.long_varint()
    }

    fn long_varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte > 1 {
                    break;
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(WireError("truncated varint or one longer than 64 bits"))
    }

    #[inline]
    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        if len > self.buf.len() {
            return Err(WireError("field runs past the end of its message"));
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    #[inline]
    fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| *n != 0 && *n < 1 << 29)
            .ok_or(WireError("invalid field number"))?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                let bytes = self.take(8)?;
                Value::Fixed64(u64::from_le_bytes(bytes.try_into().unwrap_or_default()))
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| WireError("field length does not fit in memory"))?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let bytes = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes(bytes.try_into().unwrap_or_default()))
            }
            // Groups (3, 4) are a proto2 relic no Prometheus message uses.
            _ => return Err(WireError("unsupported wire type")),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            // Nothing after a malformed field can be trusted.
            self.buf = &[];
        }
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A message with one field of each wire type, encoded by prost.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Probe {
        #[prost(int64, tag = "1")]
        int: i64,
        #[prost(double, tag = "2")]
        double: f64,
        #[prost(string, tag = "3")]
        text: String,
        #[prost(fixed32, tag = "536870911")]
        fixed: u32,
    }

    fn read(buf: &[u8]) -> Result<Probe, WireError> {
        let mut probe = Probe::default();
        for field in Fields::new(buf) {
            match field? {
                (1, v) => probe.int = v.int64()?,
                (2, v) => probe.double = v.double()?,
                (3, v) => probe.text = v.string()?.to_owned(),
                (536870911, Value::Fixed32(v)) => probe.fixed = v,
                _ => return Err(WireError("unexpected field")),
            }
        }
        Ok(probe)
    }

    proptest! {
        #[test]
        fn reads_what_prost_writes(int in any::<i64>(), double in any::<f64>(),
                                   text in "\\PC{0,40}", fixed in 1..u32::MAX) {
            let bytes = prost::Message::encode_to_vec(&Probe { int, double, text, fixed });
            let decoded = read(&bytes).unwrap();
            // Compared with prost's reading: proto3 does not encode -0.0, say.
            let probe = <Probe as prost::Message>::decode(bytes.as_slice()).unwrap();
            prop_assert_eq!(decoded.int, probe.int);
            prop_assert_eq!(decoded.double.to_bits(), probe.double.to_bits());
            prop_assert_eq!(decoded.text, probe.text);
            prop_assert_eq!(decoded.fixed, probe.fixed);
        }

        /// Whatever the bytes, reading ends (no panic); prost and this reader agree on
        /// which of them are well-formed for this message.
        #[test]
        fn agrees_with_prost_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let ours = read(&bytes);
            let theirs = <Probe as prost::Message>::decode(bytes.as_slice());
            if let (Ok(ours), Ok(theirs)) = (&ours, &theirs) {
                prop_assert_eq!(ours.int, theirs.int);
                prop_assert_eq!(&ours.text, &theirs.text);
            }
            if ours.is_ok() {
                prop_assert!(theirs.is_ok(), "accepted bytes prost refuses: {:?}", bytes);
            }
        }
    }

    #[test]
    fn malformed_input_is_refused() {
        // A varint with eleven bytes, a truncated varint, a length past the end, group.
        for bytes in [
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ][..],
            &[0x08, 0xff][..],
            &[0x1a, 0x05, b'a'][..],
            &[0x0b][..],
            &[0x00, 0x00][..],
        ] {
            assert!(Fields::new(bytes).any(|f| f.is_err()), "{bytes:?}");
        }
    }
}
