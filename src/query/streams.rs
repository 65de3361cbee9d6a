//! A selector resolved through the label index: the stream IDs a query must read and
//! their label sets, before any data is touched.

use std::collections::HashMap;

use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{col, lit};
use datafusion::prelude::SessionContext;

use super::logql::ts_literal;
use super::{QueryEngine, Result};
use crate::model::{LabelSet, Selector, Signal, StreamId, Tenant};

#[derive(Debug)]
pub struct SelectedStreams {
    /// `None` when every stream matches, so the scan needs no stream filter.
    pub ids: Option<Vec<StreamId>>,
    pub labels: HashMap<StreamId, LabelSet>,
}

impl SelectedStreams {
    /// The rows of `signal` from these streams with times in `[start, end]`.
    pub async fn scan(
        &self,
        ctx: &SessionContext,
        signal: Signal,
        (start, end): (i64, i64),
    ) -> Result<DataFrame> {
        let time = signal.time_column();
        let mut df = ctx
            .table(signal.as_str())
            .await?
            .filter(col(time).between(ts_literal(start), ts_literal(end)))?;
        if let Some(ids) = &self.ids {
            let list = ids.iter().map(|id| lit(id.0)).collect();
            df = df.filter(col("stream_id").in_list(list, false))?;
        }
        Ok(df)
    }

    /// The streams either selection names.
    pub fn union(mut self, other: SelectedStreams) -> SelectedStreams {
        self.ids = match (self.ids, other.ids) {
            (Some(mut a), Some(b)) => {
                a.extend(b.into_iter().filter(|id| !self.labels.contains_key(id)));
                Some(a)
            }
            _ => None,
        };
        self.labels.extend(other.labels);
        self
    }

    /// True when the selector matched no stream: the query has nothing to read.
    pub fn is_empty(&self) -> bool {
        self.ids.as_ref().is_some_and(|ids| ids.is_empty()) || self.labels.is_empty()
    }
}

/// Nothing selected.
impl Default for SelectedStreams {
    fn default() -> Self {
        Self {
            ids: Some(Vec::new()),
            labels: HashMap::new(),
        }
    }
}

impl QueryEngine {
    /// `{}` selects every stream with rows in `range`; otherwise the label index names
    /// the streams.
    pub fn select_streams(
        &self,
        tenant: &Tenant,
        signal: Signal,
        selector: &Selector,
        range: (i64, i64),
    ) -> SelectedStreams {
        let all = selector.matchers.is_empty();
        let in_range = all.then(|| self.db.streams_in_range(tenant, signal, Some(range)));
        let catalog = self.db.read_catalog();
        let Some(table) = catalog.table(tenant, signal) else {
            return SelectedStreams::default();
        };
        let ids: Vec<StreamId> = match in_range {
            Some(ids) => ids.into_iter().collect(),
            None => table.labels.select(selector).into_iter().collect(),
        };
        let labels = ids
            .iter()
            .filter_map(|id| table.labels.labels(*id).map(|l| (*id, l.clone())))
            .collect();
        let narrows = !all && ids.len() < table.labels.len();
        SelectedStreams {
            ids: narrows.then_some(ids),
            labels,
        }
    }
}
