//! Label selectors: what parses prints back to text that parses to the same selector,
//! and matching it against a label set does not panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use threadline::model::{LabelSet, Selector};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = Selector::parse(text) else {
        return;
    };
    let printed = selector.to_string();
    let reparsed = Selector::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
    assert_eq!(selector, reparsed, "{text:?} printed as {printed:?}");
    let labels = LabelSet::new(vec![
        ("service_name".into(), "checkout".into()),
        ("level".into(), String::new()),
    ])
    .expect("valid labels");
    let _ = selector.matches(&labels);
});
