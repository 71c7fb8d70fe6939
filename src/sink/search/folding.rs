//! The `folded` analyzer: a word matches whatever its case and accents, in
//! any script that writes accents as combining marks, and however the text
//! encodes them.
//!
//! Tantivy's `LowerCaser` lower-cases one character at a time, which leaves
//! three gaps that a user searching names finds at once:
//! - a final sigma: `ΣΩΚΡΆΤΗΣ` lower-cases to `σωκράτησ`, but `Σωκράτης`
//!   is written with `ς`;
//! - `İ` lower-cases to `i` followed by a combining dot, so `ismail` misses
//!   `İsmail`;
//! - accents other than Latin ones (`ά`) are kept, since `AsciiFoldingFilter`
//!   folds to ASCII only.
//!
//! And Tantivy's `SimpleTokenizer` splits a text whose accents are combining
//! marks (`e` + U+0301, as macOS and some exports write it) at each mark,
//! since a mark is not alphanumeric. So words are split as there, but with
//! the marks kept inside them; each word is then lower-cased, decomposed,
//! stripped of the marks of the combining diacritical blocks, given `σ` for
//! `ς`, composed again and folded to ASCII.
//!
//! Only the blocks of generic diacritics are stripped: the vowel signs of
//! Indic scripts, Hebrew points and Arabic vowels are marks too, but they
//! tell words apart.

use std::str::CharIndices;

use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer,
};
use unicode_normalization::UnicodeNormalization;

/// Longer words are not indexed (nor searched for): they are rarely words.
/// Counted in letters, not bytes, where Tantivy's `RemoveLongFilter` counts
/// bytes and so dropped Greek words of 21 letters (trial 36).
const MAX_WORD_CHARS: usize = 40;

/// The `folded` analyzer, as registered under [`super::schema::tokenizer_name`].
pub fn folded_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer::default())
        .filter(LowerCaser)
        .filter(DiacriticStripper)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Tantivy's `SimpleTokenizer`, but for combining diacritics, which it
/// takes for separators: here they belong to the word they accent, so that
/// `Inge\u{301}nieur` is one word, as `Ingénieur` is.
#[derive(Clone, Default)]
struct WordTokenizer {
    token: Token,
}

struct WordTokenStream<'a> {
    text: &'a str,
    chars: CharIndices<'a>,
    token: &'a mut Token,
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordTokenStream<'a> {
        self.token.reset();
        WordTokenStream {
            text,
            chars: text.char_indices(),
            token: &mut self.token,
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_diacritic(c)
}

impl TokenStream for WordTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.token.text.clear();
        self.token.position = self.token.position.wrapping_add(1);
        let Some((from, _)) = self.chars.by_ref().find(|&(_, c)| is_word_char(c)) else {
            return false;
        };
        let to = self
            .chars
            .by_ref()
            .find(|&(_, c)| !is_word_char(c))
            .map_or(self.text.len(), |(offset, _)| offset);
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.text.push_str(&self.text[from..to]);
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// Strips combining diacritics and folds `ς` to `σ` in lower-cased tokens,
/// and drops those over [`MAX_WORD_CHARS`] letters.
#[derive(Clone)]
struct DiacriticStripper;

impl TokenFilter for DiacriticStripper {
    type Tokenizer<T: Tokenizer> = DiacriticStripperFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> Self::Tokenizer<T> {
        DiacriticStripperFilter { tokenizer }
    }
}

#[derive(Clone)]
struct DiacriticStripperFilter<T> {
    tokenizer: T,
}

impl<T: Tokenizer> Tokenizer for DiacriticStripperFilter<T> {
    type TokenStream<'a> = DiacriticStripperStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        DiacriticStripperStream {
            tail: self.tokenizer.token_stream(text),
        }
    }
}

struct DiacriticStripperStream<T> {
    tail: T,
}

impl<T: TokenStream> TokenStream for DiacriticStripperStream<T> {
    fn advance(&mut self) -> bool {
        while self.tail.advance() {
            let text = &mut self.tail.token_mut().text;
            if !text.is_ascii() {
                *text = strip_diacritics(text);
            }
            if text.chars().count() <= MAX_WORD_CHARS {
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

/// `word` without its combining diacritics, with `σ` for a final `ς`.
fn strip_diacritics(word: &str) -> String {
    word.nfd()
        .filter(|&c| !is_combining_diacritic(c))
        .map(|c| if c == 'ς' { 'σ' } else { c })
        .nfc()
        .collect()
}

/// The Unicode blocks of combining diacritical marks, which accent letters
/// of any script.
fn is_combining_diacritic(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut analyzer = folded_analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut tokens = Vec::new();
        while stream.advance() {
            tokens.push(stream.token().text.clone());
        }
        tokens
    }

    #[test]
    fn case_and_accents_fold_in_any_script() {
        assert_eq!(tokens("ΣΩΚΡΆΤΗΣ Σωκράτης"), ["σωκρατησ", "σωκρατησ"]);
        assert_eq!(tokens("İsmail ismail ISMAIL"), ["ismail"; 3]);
        assert_eq!(tokens("Ingénieur Straße"), ["ingenieur", "strasse"]);
        assert_eq!(tokens("Дё́ма Дема"), ["дема", "дема"]);
    }

    #[test]
    fn words_are_kept_up_to_forty_letters_in_any_script() {
        let greek = "Αγιωργίτικοςμαυροδάφνη";
        assert_eq!(tokens(greek), ["αγιωργιτικοσμαυροδαφνη"]);
        let forty = "α".repeat(40);
        assert_eq!(
            tokens(&format!("{forty} {forty}α ok")),
            [forty.as_str(), "ok"]
        );
    }

    #[test]
    fn combining_accents_keep_a_word_whole() {
        assert_eq!(tokens("Inge\u{301}nieur"), ["ingenieur"]);
        assert_eq!(tokens("Ingénieur"), ["ingenieur"]);
    }

    #[test]
    fn marks_that_tell_words_apart_are_kept() {
        // Devanagari vowel signs and Hebrew points are marks outside the
        // diacritical blocks.
        assert_eq!(tokens("किताब कताब"), ["किताब", "कताब"]);
        assert_eq!(tokens("한국어"), ["한국어"]);
    }
}
