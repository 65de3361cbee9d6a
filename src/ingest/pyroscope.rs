//! Pyroscope's two ingest APIs, as its SDKs send them:
//!
//! - `POST /ingest?name=app.cpu{env=prod}&from=&until=&format=&sampleRate=&units=`:
//!   the application name with an optional profile-kind suffix and labels in braces,
//!   the time range as Unix times, and a body that is either a pprof (raw, or a
//!   multipart form whose `profile` part holds it and whose optional `prev_profile`
//!   holds the previous cumulative one) or folded stacks (`a;b;c 12` per line).
//! - `POST /push.v1.PusherService/Push`: a `push.v1.PushRequest` (Connect protocol,
//!   protobuf), one series per label set, each with its raw pprof samples.

use prost::Message;

use crate::profile::pprof::{MAX_STACK_DEPTH, TRUNCATED_FRAME};
use crate::profile::{Frame, PROFILE_NAME_LABEL, Profile, Sample, ValueType};
use crate::proto::push::v1 as push;

/// What the `name` parameter of `/ingest` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppName {
    /// `service_name`, `__name__` (when the suffix names a kind) and the braced labels.
    pub labels: Vec<(String, String)>,
}

/// Suffixes of `/ingest` application names and the profile kind each one names.
const KIND_SUFFIXES: &[(&str, &str)] = &[
    ("cpu", "process_cpu"),
    ("itimer", "process_cpu"),
    ("wall", "wall"),
    ("alloc_objects", "memory"),
    ("alloc_space", "memory"),
    ("inuse_objects", "memory"),
    ("inuse_space", "memory"),
    ("goroutines", "goroutines"),
    ("mutex_count", "mutex"),
    ("mutex_duration", "mutex"),
    ("block_count", "block"),
    ("block_duration", "block"),
];

/// Parses `app.cpu{env=prod,region=eu}`.
pub fn parse_app_name(text: &str) -> Result<AppName, String> {
    let text = text.trim();
    let (app, braced) = match text.find('{') {
        Some(i) => {
            let rest = &text[i + 1..];
            let inner = rest.strip_suffix('}').ok_or_else(|| {
                format!("name {text:?} opens labels with '{{' but does not close them with '}}'")
            })?;
            (&text[..i], Some(inner))
        }
        None => (text, None),
    };
    if app.is_empty() {
        return Err("the name parameter is empty: use e.g. name=myapp.cpu{env=prod}".into());
    }
    let mut labels = Vec::new();
    let service = match app.rsplit_once('.') {
        Some((service, suffix)) if !service.is_empty() => {
            match KIND_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
                Some((_, kind)) => {
                    labels.push((PROFILE_NAME_LABEL.to_owned(), (*kind).to_owned()));
                    service
                }
                None => app,
            }
        }
        _ => app,
    };
    labels.push(("service_name".to_owned(), service.to_owned()));
    for pair in braced.unwrap_or_default().split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("label {pair:?} in name {text:?} is not key=value"))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        labels.push((key.trim().to_owned(), value.to_owned()));
    }
    Ok(AppName { labels })
}

/// Folded stacks (`root;…;leaf count` per line) as a profile of one sample type.
/// `units` is Pyroscope's (`samples`, `objects`, `bytes`, `goroutines`,
/// `lock_samples`, `lock_nanoseconds`); for CPU samples the period is
/// `1e9 / sample_rate` nanoseconds.
pub fn parse_folded(text: &str, units: &str, sample_rate: u32) -> Result<Profile, String> {
    let (sample_type, period_type, period) = match units {
        "" | "samples" => (
            ValueType::new("samples", "count"),
            ValueType::new("cpu", "nanoseconds"),
            1_000_000_000 / i64::from(sample_rate.max(1)),
        ),
        "objects" => (
            ValueType::new("objects", "count"),
            ValueType::new("space", "bytes"),
            0,
        ),
        "bytes" => (
            ValueType::new("space", "bytes"),
            ValueType::new("space", "bytes"),
            0,
        ),
        "goroutines" => (
            ValueType::new("goroutines", "count"),
            ValueType::new("goroutines", "count"),
            0,
        ),
        "lock_samples" => (
            ValueType::new("contentions", "count"),
            ValueType::new("contentions", "count"),
            0,
        ),
        "lock_nanoseconds" => (
            ValueType::new("delay", "nanoseconds"),
            ValueType::new("contentions", "count"),
            0,
        ),
        other => {
            return Err(format!(
                "unknown units {other:?}: use samples, objects, bytes, goroutines, lock_samples or lock_nanoseconds"
            ));
        }
    };
    let mut profile = Profile {
        period_type,
        period,
        sample_types: vec![sample_type],
        ..Profile::default()
    };
    let mut index = std::collections::HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let (stack, count) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("line {}: expected \"a;b;c count\"", number + 1))?;
        let count: i64 = count
            .parse()
            .map_err(|_| format!("line {}: the count {count:?} is not an integer", number + 1))?;
        let mut frame = |function: &str| {
            *index.entry(function.to_owned()).or_insert_with(|| {
                profile.frames.push(Frame {
                    function: function.to_owned(),
                    ..Frame::default()
                });
                profile.frames.len() as u32 - 1
            })
        };
        let mut stack: Vec<u32> = stack
            .split(';')
            .filter(|f| !f.is_empty())
            .map(&mut frame)
            .collect();
        if stack.len() > MAX_STACK_DEPTH {
            // Keep the leaf-most frames, as for pprof.
            let keep = stack.split_off(stack.len() - (MAX_STACK_DEPTH - 1));
            stack = std::iter::once(frame(TRUNCATED_FRAME))
                .chain(keep)
                .collect();
        }
        profile.samples.push(Sample {
            stack,
            values: vec![count],
            labels: Vec::new(),
        });
    }
    Ok(profile)
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    pub name: String,
    pub data: &'a [u8],
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub fn multipart_boundary(content_type: &str) -> Option<&str> {
    let mut params = content_type.split(';');
    let mime = params.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (key, value) = p.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// Splits a `multipart/form-data` body into its named parts.
pub fn parse_multipart<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, String> {
    if boundary.is_empty() || boundary.len() > 200 {
        return Err("multipart boundary is empty or longer than 200 bytes".into());
    }
    let delimiter = format!("--{boundary}");
    let Some(first) = memchr::memmem::find(body, delimiter.as_bytes()) else {
        return Err("multipart body has no boundary line".into());
    };
    // Every later delimiter starts a line.
    let next_delimiter = format!("\r\n--{boundary}");
    let finder = memchr::memmem::Finder::new(next_delimiter.as_bytes());
    let mut parts = Vec::new();
    let mut start = first + delimiter.len();
    loop {
        let rest = &body[start..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("multipart boundary line is not followed by CRLF")?;
        let Some(next) = finder.find(rest) else {
            return Err("multipart body ends without a closing boundary".into());
        };
        let part = &rest[..next];
        let header_end = memchr::memmem::find(part, b"\r\n\r\n")
            .ok_or("multipart part has no blank line after its headers")?;
        let headers = std::str::from_utf8(&part[..header_end])
            .map_err(|_| "multipart part headers are not UTF-8")?;
        let name = headers
            .split("\r\n")
            .filter_map(|h| h.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
            .flat_map(|(_, v)| v.split(';'))
            .find_map(|p| {
                let (key, value) = p.trim().split_once('=')?;
                (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
            })
            .ok_or("multipart part has no Content-Disposition name")?;
        parts.push(Part {
            name,
            data: &part[header_end + 4..],
        });
        start = start + 2 + next + next_delimiter.len();
    }
}

/// A decoded push request: per series, its labels and its raw profiles with their IDs.
pub fn decode_push(body: &[u8]) -> Result<push::PushRequest, String> {
    push::PushRequest::decode(body).map_err(|e| format!("invalid push.v1.PushRequest: {e}"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn pairs(name: &AppName) -> Vec<(&str, &str)> {
        name.labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn app_names() {
        let name = parse_app_name("shop.cpu{env=prod, region=\"eu\"}").unwrap();
        assert_eq!(
            pairs(&name),
            [
                ("__name__", "process_cpu"),
                ("service_name", "shop"),
                ("env", "prod"),
                ("region", "eu")
            ]
        );
        let name = parse_app_name("my.app.alloc_space").unwrap();
        assert_eq!(
            pairs(&name),
            [("__name__", "memory"), ("service_name", "my.app")]
        );
        let name = parse_app_name("my.app").unwrap();
        assert_eq!(pairs(&name), [("service_name", "my.app")]);
        assert!(parse_app_name("shop.cpu{env=prod").is_err());
        assert!(parse_app_name("shop{env}").is_err());
        assert!(parse_app_name("{env=prod}").is_err());
    }

    #[test]
    fn folded_stacks() {
        let p = parse_folded("main;work;hash 30\nmain;idle 5\n\n", "samples", 100).unwrap();
        assert_eq!(p.period, 10_000_000);
        assert_eq!(p.samples.len(), 2);
        assert_eq!(p.samples[0].values, [30]);
        let names: Vec<&str> = p.samples[0]
            .stack
            .iter()
            .map(|&f| p.frames[f as usize].function.as_str())
            .collect();
        assert_eq!(names, ["main", "work", "hash"]);
        assert!(parse_folded("main;work x", "samples", 100).is_err());
        let deep = format!("{} 1", vec!["f"; MAX_STACK_DEPTH + 5].join(";"));
        let p = parse_folded(&deep, "samples", 100).unwrap();
        assert_eq!(p.samples[0].stack.len(), MAX_STACK_DEPTH);
        assert_eq!(
            p.frames[p.samples[0].stack[0] as usize].function,
            TRUNCATED_FRAME
        );
        assert!(parse_folded("main 1", "furlongs", 100).is_err());
    }

    #[test]
    fn boundary_text_inside_a_part_is_data() {
        let body = b"--zz\r\nContent-Disposition: form-data; name=\"profile\"\r\n\r\nab--zzcd\r\n--zz--\r\n";
        let parts = parse_multipart(body, "zz").unwrap();
        assert_eq!(parts[0].data, b"ab--zzcd");
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            multipart_boundary("multipart/form-data; boundary=\"abc\""),
            Some("abc")
        );
        assert_eq!(multipart_boundary("application/octet-stream"), None);
    }

    fn form(boundary: &str, parts: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, data) in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{name}.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        body
    }

    proptest! {
        #[test]
        fn multipart_round_trip(
            parts in proptest::collection::vec(("[a-z_]{1,12}", proptest::collection::vec(any::<u8>(), 0..64)), 0..4)
        ) {
            let boundary = "----boundary7MA4YWxkTrZu0gW";
            let body = form(boundary, &parts);
            let parsed = parse_multipart(&body, boundary).unwrap();
            let parsed: Vec<(String, Vec<u8>)> =
                parsed.into_iter().map(|p| (p.name, p.data.to_vec())).collect();
            prop_assert_eq!(parsed, parts);
        }

        #[test]
        fn multipart_never_panics(body in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_multipart(&body, "b");
        }
    }
}
