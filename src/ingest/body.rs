//! Request bodies: content encodings and the size limit that applies after
//! decompression. The limit is enforced while inflating, so a small compressed body
//! can never expand past it in memory.

use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    Identity,
    Gzip,
    /// Snappy's raw block format, as remote write and Loki push send it.
    Snappy,
}

impl ContentEncoding {
    pub fn parse(header: Option<&str>) -> Result<Self, BodyError> {
        match header.map(|h| h.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(Self::Identity),
            Some("gzip") | Some("x-gzip") => Ok(Self::Gzip),
            Some("snappy") => Ok(Self::Snappy),
            Some(other) => Err(BodyError::UnsupportedEncoding(other.to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the limit of {limit} bytes after decompression")]
    TooLarge { limit: usize },
    #[error("unsupported content encoding {0:?}: send identity, gzip or snappy")]
    UnsupportedEncoding(String),
    #[error("invalid gzip body: {0}")]
    BadGzip(std::io::Error),
    #[error("invalid snappy body (raw block format expected): {0}")]
    BadSnappy(snap::Error),
}

/// Inflates `body` into at most `limit` bytes.
pub fn decompress(
    body: bytes::Bytes,
    encoding: ContentEncoding,
    limit: usize,
) -> Result<bytes::Bytes, BodyError> {
    match encoding {
        ContentEncoding::Identity if body.len() > limit => Err(BodyError::TooLarge { limit }),
        ContentEncoding::Identity => Ok(body),
        ContentEncoding::Gzip => inflate_gzip(&body, limit),
        ContentEncoding::Snappy => {
            // The block format declares its length up front: check it before allocating.
            let len = snap::raw::decompress_len(&body).map_err(BodyError::BadSnappy)?;
            if len > limit {
                return Err(BodyError::TooLarge { limit });
            }
            let out = snap::raw::Decoder::new()
                .decompress_vec(&body)
                .map_err(BodyError::BadSnappy)?;
            Ok(out.into())
        }
    }
}

/// Inflates gzip into at most `limit` bytes while holding no more memory than the body
/// declares, so that a bomb costs what its sender claims, not what the limit allows.
///
/// Every gzip member ends with its inflated size mod 2^32 (ISIZE). The last member's
/// is read first: the body inflates to at least that much, so past the limit it is
/// refused before anything is inflated — unless no deflate stream of this length could
/// inflate that far (deflate expands at most 1032-fold), which means the body is cut
/// short or corrupt and the trailer is noise. Otherwise the body is inflated into a
/// buffer of the declared size; output beyond it (several members, or a trailer that
/// lies) is only counted, in a small scratch buffer, and a body that stays within the
/// limit is inflated again into a buffer of the counted size.
fn inflate_gzip(body: &[u8], limit: usize) -> Result<bytes::Bytes, BodyError> {
    const HEADER_AND_TRAILER: usize = 18;
    const MAX_DEFLATE_RATIO: u64 = 1032;
    let declared = match body.len().checked_sub(4) {
        Some(at) if body.len() >= HEADER_AND_TRAILER && body.starts_with(&[0x1f, 0x8b]) => {
            let mut size = [0u8; 4];
            size.copy_from_slice(&body[at..]);
            let size = u32::from_le_bytes(size);
            let possible = u64::from(size) <= MAX_DEFLATE_RATIO * body.len() as u64;
            if possible { size as usize } else { 0 }
        }
        _ => 0,
    };
    if declared > limit {
        return Err(BodyError::TooLarge { limit });
    }
    let mut decoder = flate2::read::MultiGzDecoder::new(body);
    let mut out = Vec::with_capacity(declared);
    (&mut decoder)
        .take(declared as u64)
        .read_to_end(&mut out)
        .map_err(BodyError::BadGzip)?;
    let mut scratch = [0u8; 8 << 10];
    let mut total = out.len();
    loop {
        match decoder.read(&mut scratch) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BodyError::BadGzip(e)),
        }
        if total > limit {
            return Err(BodyError::TooLarge { limit });
        }
    }
    if total == out.len() {
        return Ok(out.into());
    }
    let mut out = Vec::with_capacity(total);
    flate2::read::MultiGzDecoder::new(body)
        .read_to_end(&mut out)
        .map_err(BodyError::BadGzip)?;
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> bytes::Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap().into()
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        let err = decompress(bomb, ContentEncoding::Gzip, 1 << 20).unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit } if limit == 1 << 20));
    }

    /// A bomb whose trailer understates its size is counted, not held, past the size
    /// it declares.
    #[test]
    fn gzip_bomb_with_a_lying_trailer_stops_at_the_limit() {
        let mut bomb = gzip(&vec![0u8; 8 << 20]).to_vec();
        let at = bomb.len() - 4;
        bomb[at..].copy_from_slice(&100u32.to_le_bytes());
        let err = decompress(bomb.into(), ContentEncoding::Gzip, 1 << 20).unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { .. }), "{err}");
    }

    /// A body cut short ends in deflate data, not a trailer: its last four bytes claim
    /// a size no body of its length could inflate to, and it is reported as corrupt.
    #[test]
    fn truncated_gzip_is_corrupt_not_too_large() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut cut = gzip(&data).to_vec();
        cut.truncate(cut.len() / 2);
        let n = cut.len();
        cut[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = decompress(cut.into(), ContentEncoding::Gzip, 1 << 20).unwrap_err();
        assert!(matches!(err, BodyError::BadGzip(_)), "{err}");
    }

    #[test]
    fn gzip_members_concatenated_inflate_whole() {
        let mut body = gzip(b"first member, ").to_vec();
        body.extend_from_slice(&gzip(b"second"));
        let out = decompress(body.clone().into(), ContentEncoding::Gzip, 100).unwrap();
        assert_eq!(&out[..], b"first member, second");
        assert!(matches!(
            decompress(body.into(), ContentEncoding::Gzip, 19),
            Err(BodyError::TooLarge { .. })
        ));
    }

    #[test]
    fn gzip_round_trip_and_exact_limit() {
        let data = b"hello world".repeat(10);
        let out = decompress(gzip(&data), ContentEncoding::Gzip, data.len()).unwrap();
        assert_eq!(&out[..], &data[..]);
        assert!(decompress(gzip(&data), ContentEncoding::Gzip, data.len() - 1).is_err());
    }

    #[test]
    fn snappy_length_header_is_checked_before_allocating() {
        let data = b"remote write".repeat(100);
        let packed = bytes::Bytes::from(snap::raw::Encoder::new().compress_vec(&data).unwrap());
        let out = decompress(packed.clone(), ContentEncoding::Snappy, data.len()).unwrap();
        assert_eq!(&out[..], &data[..]);
        assert!(matches!(
            decompress(packed, ContentEncoding::Snappy, data.len() - 1),
            Err(BodyError::TooLarge { .. })
        ));
        // A header that claims 4 GiB in a 5-byte body is refused without allocating.
        let liar = bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(
            decompress(liar, ContentEncoding::Snappy, 1 << 20),
            Err(BodyError::TooLarge { .. })
        ));
        // A header that understates the length is a corrupt body, not a panic.
        let mut short = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        short[0] = 3;
        assert!(matches!(
            decompress(short.into(), ContentEncoding::Snappy, 1 << 20),
            Err(BodyError::BadSnappy(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn snappy_never_panics_and_never_exceeds_the_limit(body in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Ok(out) = decompress(body.into(), ContentEncoding::Snappy, 1024) {
                proptest::prop_assert!(out.len() <= 1024);
            }
        }
    }

    #[test]
    fn bad_gzip_and_unknown_encoding() {
        assert!(matches!(
            decompress(
                bytes::Bytes::from_static(b"nope"),
                ContentEncoding::Gzip,
                100
            ),
            Err(BodyError::BadGzip(_))
        ));
        assert!(ContentEncoding::parse(Some("br")).is_err());
        assert_eq!(
            ContentEncoding::parse(Some("GZIP")).unwrap(),
            ContentEncoding::Gzip
        );
    }
}
