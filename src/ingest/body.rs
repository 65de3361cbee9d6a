//! Request bodies: content encodings and the size limit that applies after
//! decompression. The limit is enforced while inflating, so a small compressed body
//! can never expand past it in memory.

use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    Identity,
    Gzip,
}

impl ContentEncoding {
    pub fn parse(header: Option<&str>) -> Result<Self, BodyError> {
        match header.map(|h| h.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(Self::Identity),
            Some("gzip") | Some("x-gzip") => Ok(Self::Gzip),
            Some(other) => Err(BodyError::UnsupportedEncoding(other.to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the limit of {limit} bytes after decompression")]
    TooLarge { limit: usize },
    #[error("unsupported content encoding {0:?}: send identity or gzip")]
    UnsupportedEncoding(String),
    #[error("invalid gzip body: {0}")]
    BadGzip(std::io::Error),
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
        ContentEncoding::Gzip => {
            let decoder = flate2::read::MultiGzDecoder::new(&body[..]);
            let mut out = Vec::with_capacity((body.len() * 4).min(limit));
            decoder
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(BodyError::BadGzip)?;
            if out.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            Ok(out.into())
        }
    }
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

    #[test]
    fn gzip_round_trip_and_exact_limit() {
        let data = b"hello world".repeat(10);
        let out = decompress(gzip(&data), ContentEncoding::Gzip, data.len()).unwrap();
        assert_eq!(&out[..], &data[..]);
        assert!(decompress(gzip(&data), ContentEncoding::Gzip, data.len() - 1).is_err());
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
