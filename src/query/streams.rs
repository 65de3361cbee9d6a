//! A selector resolved through the label index: the stream IDs a query must read and
//! their label sets, before any data is touched.

use std::collections::HashMap;

use super::QueryEngine;
use crate::model::{LabelSet, Selector, Signal, StreamId, Tenant};

pub struct SelectedStreams {
    /// `None` when every stream matches, so the scan needs no stream filter.
    pub ids: Option<Vec<StreamId>>,
    pub labels: HashMap<StreamId, LabelSet>,
}

impl SelectedStreams {
    /// True when the selector matched no stream: the query has nothing to read.
    pub fn is_empty(&self) -> bool {
        self.ids.as_ref().is_some_and(|ids| ids.is_empty()) || self.labels.is_empty()
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
            return SelectedStreams {
                ids: Some(Vec::new()),
                labels: HashMap::new(),
            };
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
