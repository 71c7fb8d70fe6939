//! The Tantivy schema of a search view, and the analyzers its text fields use.
//!
//! One Tantivy field per view field, plus two reserved ones: `_id`, the root
//! row's id as one untokenized term, the key of upserts and deletes; and
//! `_source`, the stored fields' values as the engine wrote them, one JSON
//! object that hits return. A view field itself is only indexed (and fast):
//! what a hit shows is the engine's value, not the index's form of it (an
//! array stays an array, a `date` a date, `infinity` itself where the index
//! holds its largest instant).

use std::collections::HashSet;

use tantivy::Index;
use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, INDEXED, IndexRecordOption, NumericOptions,
    STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    TextAnalyzer as TantivyAnalyzer,
};

use super::folding::folded_analyzer;

use super::SearchError;
use crate::view::model::{SearchField, SearchFieldType, StemLanguage, TextAnalyzer};

/// The reserved field holding each document's id.
pub const ID_FIELD: &str = "_id";

/// The reserved field holding each document's stored values, as JSON.
pub const SOURCE_FIELD: &str = "_source";

/// A view's Tantivy schema, with each view field bound to its Tantivy field.
#[derive(Debug, Clone)]
pub struct IndexSchema {
    pub schema: Schema,
    /// `_id`: untokenized, indexed (for `delete_term`) and stored (for hits).
    pub id: Field,
    /// `_source`: stored only, the JSON object of the stored fields' values.
    pub source: Field,
    /// The view's fields, in definition order.
    pub fields: Vec<BoundField>,
}

impl IndexSchema {
    /// Whether `field` is columnar in the schema on disk: exact ranges,
    /// `field:*`, sorts.
    pub fn is_fast(&self, field: &BoundField) -> bool {
        self.schema.get_field_entry(field.field).is_fast()
    }
}

/// A view field and the Tantivy field that holds it.
#[derive(Debug, Clone)]
pub struct BoundField {
    pub name: String,
    pub field: Field,
    pub field_type: SearchFieldType,
    /// Returned with hits, from `_source`.
    pub stored: bool,
    /// Query words match terms this many edits away (the view's `fuzzy`).
    pub fuzzy: u8,
}

/// Builds the schema of a view's fields. Refuses what Tantivy would panic on
/// (a duplicate name) and names its query parser cannot address.
pub fn index_schema(fields: &[SearchField]) -> Result<IndexSchema, SearchError> {
    check_field_names(fields)?;
    let mut builder = Schema::builder();
    builder.add_text_field(ID_FIELD, STRING | STORED);
    builder.add_text_field(SOURCE_FIELD, STORED);
    for field in fields {
        add_field(&mut builder, field);
    }
    bind(builder.build(), fields)
}

/// Binds a view's fields to the fields of the same name in `schema`.
pub fn bind(schema: Schema, fields: &[SearchField]) -> Result<IndexSchema, SearchError> {
    let lookup = |name: &str| {
        schema
            .get_field(name)
            .map_err(|_| SearchError::InvalidField {
                field: name.to_owned(),
                reason: "missing from the index schema".to_owned(),
            })
    };
    let id = lookup(ID_FIELD)?;
    let source = lookup(SOURCE_FIELD)?;
    let bound = fields
        .iter()
        .map(|field| {
            Ok(BoundField {
                name: field.name.clone(),
                field: lookup(&field.name)?,
                field_type: field.field_type,
                stored: field.stored,
                fuzzy: field.fuzzy,
            })
        })
        .collect::<Result<_, SearchError>>()?;
    Ok(IndexSchema {
        schema,
        id,
        source,
        fields: bound,
    })
}

fn check_field_names(fields: &[SearchField]) -> Result<(), SearchError> {
    let mut seen = HashSet::new();
    for field in fields {
        let refuse = |reason: &str| {
            Err(SearchError::InvalidField {
                field: field.name.clone(),
                reason: reason.to_owned(),
            })
        };
        if field.name == ID_FIELD || field.name == SOURCE_FIELD {
            return refuse("`_id` and `_source` are reserved");
        }
        // The query parser reads `field:term`; other characters (`.`, `:`,
        // spaces, a leading `-`) would make the field unreachable or ambiguous.
        let addressable = field.name.chars().all(|c| c.is_alphanumeric() || c == '_');
        if field.name.is_empty() || !addressable {
            return refuse("a search field name is letters, digits and `_`");
        }
        if !seen.insert(field.name.as_str()) {
            return refuse("defined twice");
        }
    }
    Ok(())
}

fn add_field(builder: &mut tantivy::schema::SchemaBuilder, field: &SearchField) {
    let name = field.name.as_str();
    match field.field_type {
        SearchFieldType::Text(analyzer) => {
            builder.add_text_field(name, text_options(analyzer));
        }
        SearchFieldType::Keyword => {
            builder.add_text_field(name, keyword_options(field));
        }
        SearchFieldType::I64 => {
            builder.add_i64_field(name, numeric_options(field));
        }
        SearchFieldType::F64 => {
            builder.add_f64_field(name, numeric_options(field));
        }
        SearchFieldType::Bool => {
            builder.add_bool_field(name, numeric_options(field));
        }
        SearchFieldType::Date => {
            builder.add_date_field(name, date_options(field));
        }
    }
}

/// Text is never fast: `viewkeeper check` refuses `fast` on a text field.
fn text_options(analyzer: TextAnalyzer) -> TextOptions {
    // TEXT's indexing (frequencies and positions, for scoring and phrases)
    // with the view's analyzer.
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(&tokenizer_name(analyzer))
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    TextOptions::default().set_indexing_options(indexing)
}

fn keyword_options(field: &SearchField) -> TextOptions {
    let mut options = STRING;
    if field.fast {
        options = options | FAST;
    }
    options
}

fn numeric_options(field: &SearchField) -> NumericOptions {
    let mut options = NumericOptions::from(INDEXED);
    if field.fast {
        options = options.set_fast();
    }
    options
}

/// Microseconds: PostgreSQL's precision, kept in the fast column (the
/// inverted index always rounds dates to seconds).
fn date_options(field: &SearchField) -> DateOptions {
    let mut options = DateOptions::from(INDEXED).set_precision(DateTimePrecision::Microseconds);
    if field.fast {
        options = options.set_fast();
    }
    options
}

/// The registered name of a text analyzer: Tantivy's `default`,
/// `folded_unicode`, or `stem_<language>`.
pub fn tokenizer_name(analyzer: TextAnalyzer) -> String {
    match analyzer {
        TextAnalyzer::Default => "default".to_owned(),
        // Not `folded`, the name of the analyzer before it folded case and
        // accents beyond ASCII: an index it wrote has other terms, and is
        // recreated for the new name.
        TextAnalyzer::Folded => "folded_unicode".to_owned(),
        TextAnalyzer::Stemmed(language) => {
            format!("stem_{}", format!("{language:?}").to_lowercase())
        }
    }
}

/// Registers the analyzers the fields use besides Tantivy's `default`. An
/// index opened by another tool must register the same names to tokenize
/// queries alike.
pub fn register_tokenizers(index: &Index, fields: &[SearchField]) {
    for field in fields {
        let SearchFieldType::Text(analyzer) = field.field_type else {
            continue;
        };
        let built = match analyzer {
            TextAnalyzer::Default => continue,
            TextAnalyzer::Folded => folded_analyzer(),
            TextAnalyzer::Stemmed(language) => stemmed_analyzer(language),
        };
        index
            .tokenizers()
            .register(&tokenizer_name(analyzer), built);
    }
}

/// Tantivy's `default` analyzer followed by a Snowball stemmer.
fn stemmed_analyzer(language: StemLanguage) -> TantivyAnalyzer {
    TantivyAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(Stemmer::new(stem_language(language)))
        .build()
}

fn stem_language(language: StemLanguage) -> Language {
    match language {
        StemLanguage::Arabic => Language::Arabic,
        StemLanguage::Danish => Language::Danish,
        StemLanguage::Dutch => Language::Dutch,
        StemLanguage::English => Language::English,
        StemLanguage::Finnish => Language::Finnish,
        StemLanguage::French => Language::French,
        StemLanguage::German => Language::German,
        StemLanguage::Greek => Language::Greek,
        StemLanguage::Hungarian => Language::Hungarian,
        StemLanguage::Italian => Language::Italian,
        StemLanguage::Norwegian => Language::Norwegian,
        StemLanguage::Portuguese => Language::Portuguese,
        StemLanguage::Romanian => Language::Romanian,
        StemLanguage::Russian => Language::Russian,
        StemLanguage::Spanish => Language::Spanish,
        StemLanguage::Swedish => Language::Swedish,
        StemLanguage::Tamil => Language::Tamil,
        StemLanguage::Turkish => Language::Turkish,
    }
}
