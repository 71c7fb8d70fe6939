//! The catalog check of an aggregate view (to be completed): its root and
//! joined tables exist and have primary keys, every column it names exists,
//! group keys and measures have types that fit their functions.

use super::ViewCheck;
use crate::view::model::AggregateView;

impl<'a> ViewCheck<'a> {
    pub(super) fn aggregate_view(&mut self, aggregate: &'a AggregateView) {
        let _ = self.table(&aggregate.root, "root");
    }
}
