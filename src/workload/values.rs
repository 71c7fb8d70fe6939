//! Random column values: names, prices, statuses and large texts.

use rand::Rng;
use rand::seq::IndexedRandom;

/// A status an order can be created with, other than draft.
pub(super) fn live_status(rng: &mut impl Rng) -> &'static str {
    pick(rng, &["pending", "paid", "paid", "cancelled"])
}

pub(super) fn price(rng: &mut impl Rng) -> i64 {
    rng.random_range(100..100_000)
}

pub(super) fn word(rng: &mut impl Rng) -> &'static str {
    pick(rng, WORDS)
}

pub(super) fn person_name(rng: &mut impl Rng) -> String {
    format!("{} {}", pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES))
}

pub(super) fn email_for(rng: &mut impl Rng, name: &str) -> String {
    let user = name.to_lowercase().replace(' ', ".");
    format!("{user}{}@example.com", rng.random_range(1..10_000))
}

pub(super) fn product_name(rng: &mut impl Rng) -> String {
    let (adjective, noun) = (word(rng), word(rng));
    format!("{adjective} {noun} {}", rng.random_range(1..1_000))
}

/// The lists are constant and never empty.
fn pick(rng: &mut impl Rng, choices: &[&'static str]) -> &'static str {
    choices.choose(rng).copied().unwrap_or_default()
}

/// The order life cycle: draft → pending → paid, and cancelling or reopening.
pub(super) fn next_status(current: &str, rng: &mut impl Rng) -> &'static str {
    let choices: &[&'static str] = match current {
        "draft" => &["pending", "pending", "cancelled"],
        "pending" => &["paid", "paid", "draft", "cancelled"],
        "paid" => &["pending", "cancelled"],
        _ => &["pending", "draft"],
    };
    pick(rng, choices)
}

/// 10–20 KB of random words with `token` in the middle, so a search for the
/// token finds exactly this product.
pub(super) fn large_text(rng: &mut impl Rng, token: &str) -> String {
    let target = rng.random_range(10_000..20_000);
    let mut text = String::with_capacity(target + 64);
    let mut token_written = false;
    while text.len() < target {
        if !token_written && text.len() >= target / 2 {
            text.push_str(token);
            text.push(' ');
            token_written = true;
        }
        text.push_str(word(rng));
        text.push(' ');
    }
    text
}

const WORDS: &[&str] = &[
    "amber", "brisk", "cedar", "dune", "ember", "fjord", "granite", "harbor", "indigo", "juniper",
    "kestrel", "lumen", "maple", "nimbus", "onyx", "pepper", "quartz", "raven", "saffron",
    "tundra", "umber", "velvet", "willow", "xenon", "yarrow", "zephyr", "lamp", "kettle", "chair",
    "blanket", "mug", "lantern", "satchel", "scarf", "teapot", "clock",
];
const FIRST_NAMES: &[&str] = &[
    "Ada", "Bo", "Chen", "Dara", "Emil", "Farah", "Goran", "Hana", "Ines", "Jonas", "Kemal",
    "Lena", "Mateo", "Nadia", "Olu", "Priya",
];
const LAST_NAMES: &[&str] = &[
    "Almeida", "Berg", "Costa", "Dubois", "Eze", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Larsen", "Moreau", "Novak", "Okafor", "Petrov",
];

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn large_text_is_10_to_20_kb_and_holds_the_token_once() {
        let mut rng = StdRng::seed_from_u64(7);
        let text = large_text(&mut rng, "vktokenXYZ");
        assert!((10_000..20_100).contains(&text.len()), "{}", text.len());
        assert_eq!(text.matches("vktokenXYZ").count(), 1);
    }

    #[test]
    fn every_status_has_a_different_next_status() {
        let mut rng = StdRng::seed_from_u64(7);
        for status in ["draft", "pending", "paid", "cancelled"] {
            for _ in 0..20 {
                assert_ne!(next_status(status, &mut rng), status);
            }
        }
    }
}
