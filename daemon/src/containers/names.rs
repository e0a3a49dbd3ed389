//! Container names: validation as dockerd does it and generated
//! `adjective_surname` names (our own word lists).

use rand::seq::SliceRandom;

/// True when `name` (with or without the leading `/`) matches dockerd's
/// `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`.
pub fn is_valid(name: &str) -> bool {
    let body = name.strip_prefix('/').unwrap_or(name);
    let mut chars = body.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !first.is_ascii_alphanumeric() {
        return false;
    }
    let rest = chars.as_str();
    !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `x` → `/x`.
pub fn canonical(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/{name}")
    }
}

const ADJECTIVES: &[&str] = &[
    "agile",
    "amber",
    "ancient",
    "ardent",
    "azure",
    "bold",
    "brave",
    "breezy",
    "bright",
    "brisk",
    "calm",
    "candid",
    "careful",
    "cheerful",
    "clever",
    "cosmic",
    "crisp",
    "curious",
    "daring",
    "dazzling",
    "deft",
    "devoted",
    "diligent",
    "dreamy",
    "eager",
    "earnest",
    "electric",
    "elegant",
    "epic",
    "fearless",
    "fervent",
    "festive",
    "fluent",
    "focused",
    "frosty",
    "gallant",
    "gentle",
    "gifted",
    "glowing",
    "graceful",
    "grand",
    "hardy",
    "hearty",
    "helpful",
    "honest",
    "humble",
    "jolly",
    "jovial",
    "keen",
    "kind",
    "lively",
    "loyal",
    "lucid",
    "lucky",
    "merry",
    "mellow",
    "mighty",
    "modest",
    "nimble",
    "noble",
    "patient",
    "peaceful",
    "placid",
    "plucky",
    "polished",
    "proud",
    "quiet",
    "quirky",
    "radiant",
    "rapid",
    "resolute",
    "rustic",
    "serene",
    "sharp",
    "shiny",
    "silent",
    "sleek",
    "snappy",
    "solid",
    "sprightly",
    "stellar",
    "steady",
    "sturdy",
    "sunny",
    "swift",
    "tender",
    "thoughtful",
    "tidy",
    "tranquil",
    "trusty",
    "upbeat",
    "valiant",
    "vibrant",
    "vivid",
    "warm",
    "wise",
    "witty",
    "zealous",
    "zesty",
];

/// Surnames of people who shaped computing, mathematics and science.
const SURNAMES: &[&str] = &[
    "agnesi",
    "babbage",
    "backus",
    "bardeen",
    "bartik",
    "bell",
    "bernoulli",
    "boole",
    "borg",
    "brattain",
    "cantor",
    "cerf",
    "chandrasekhar",
    "clarke",
    "codd",
    "conway",
    "corbato",
    "curie",
    "dijkstra",
    "easley",
    "einstein",
    "engelbart",
    "euclid",
    "euler",
    "fermat",
    "feynman",
    "floyd",
    "franklin",
    "galois",
    "gauss",
    "germain",
    "goldberg",
    "goodall",
    "hamilton",
    "hamming",
    "hawking",
    "hertz",
    "hilbert",
    "hodgkin",
    "hopper",
    "hypatia",
    "jackson",
    "johnson",
    "kahan",
    "kay",
    "kepler",
    "kernighan",
    "knuth",
    "kowalevski",
    "lamarr",
    "lamport",
    "leavitt",
    "liskov",
    "lovelace",
    "maxwell",
    "mccarthy",
    "meitner",
    "minsky",
    "mirzakhani",
    "moore",
    "napier",
    "neumann",
    "newton",
    "nightingale",
    "noether",
    "noyce",
    "pascal",
    "perlman",
    "pike",
    "poincare",
    "ramanujan",
    "ritchie",
    "sammet",
    "shannon",
    "shockley",
    "sinoussi",
    "spence",
    "stallman",
    "stonebraker",
    "sutherland",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "vaughan",
    "wescoff",
    "wiles",
    "wilson",
    "wing",
    "wozniak",
    "yalow",
    "yonath",
];

/// A random `adjective_surname`; after many collisions the caller appends a
/// digit, as dockerd does.
pub fn generate() -> String {
    let mut rng = rand::thread_rng();
    let adjective = ADJECTIVES.choose(&mut rng).copied().unwrap_or("quiet");
    let surname = SURNAMES.choose(&mut rng).copied().unwrap_or("turing");
    format!("{adjective}_{surname}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_follows_dockerd() {
        for ok in ["ab", "/ab", "a.b-c_d", "web1", "1x"] {
            assert!(is_valid(ok), "{ok} should be valid");
        }
        for bad in [
            "", "/", "a", "/a", "-ab", "_ab", "a b", "a/b", "ab!", "héllo",
        ] {
            assert!(!is_valid(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn generated_names_are_valid() {
        for _ in 0..100 {
            let n = generate();
            assert!(is_valid(&n), "{n}");
            assert!(n.contains('_'));
        }
    }
}
