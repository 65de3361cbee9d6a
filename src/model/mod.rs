//! Pure domain types: identifiers, label sets, matchers, tenants, signals and the Arrow
//! schemas of the tables. No I/O happens here.

pub mod ids;
pub mod labels;
pub mod matcher;
pub mod schema;
pub mod signal;
pub mod tenant;

pub use ids::{IdError, SpanId, TraceId, to_hex};
pub use labels::{LabelError, LabelSet, StreamId};
pub use matcher::{LineFilter, LineFilterOp, MatchOp, Matcher, ParseError, Selector};
pub use signal::Signal;
pub use tenant::{Tenant, TenantError};
