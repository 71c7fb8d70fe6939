//! Search-view fields shared by this module's tests.

use crate::view::model::{SearchField, SearchFieldType, SearchSource, StemLanguage, TextAnalyzer};

pub fn field(name: &str, field_type: SearchFieldType, stored: bool, fast: bool) -> SearchField {
    SearchField {
        name: name.to_owned(),
        from: SearchSource::Column(vec![name.to_owned()]),
        field_type,
        stored,
        fast,
        fuzzy: 0,
    }
}

/// DESIGN.md's `product_search`, with a stemmed description and one field
/// of each remaining type.
pub fn product_fields() -> Vec<SearchField> {
    use SearchFieldType::*;
    vec![
        field("name", Text(TextAnalyzer::Default), true, false),
        field(
            "description",
            Text(TextAnalyzer::Stemmed(StemLanguage::English)),
            false,
            false,
        ),
        field("category", Keyword, true, true),
        field("price_cents", I64, true, true),
        field("weight", F64, true, false),
        field("in_stock", Bool, true, true),
        field("released", Date, true, false),
        field("updated_at", Date, true, true),
        field("listed_at", Date, true, false),
    ]
}
