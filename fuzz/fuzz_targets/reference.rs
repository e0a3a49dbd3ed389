//! Docker's reference grammar (`[domain/]path[:tag][@digest]`, IDs):
//! never a panic; a reference that parses prints as a string that parses
//! back to the same reference, in full and in its familiar form.
#![no_main]

use berth_images::reference::{ImageRef, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ImageRef::parse(s);
    if let Ok(r) = Reference::parse_normalized(s) {
        let full = r.to_string();
        let again = Reference::parse_normalized(&full)
            .unwrap_or_else(|e| panic!("{s:?} parsed, its form {full:?} does not: {e}"));
        assert!(again == r, "{s:?} -> {full:?} -> {again:?}");
        let familiar = r.familiar();
        // As in Docker's reference library, `docker.io/foo.com/bar` is
        // familiar as `foo.com/bar`, which names another registry: only
        // a familiar name whose first part is no domain comes back.
        let first = familiar.split('/').next().unwrap_or("");
        let looks_like_domain = familiar.contains('/')
            && (first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()));
        // A 64-hex name is an image ID, never a repository.
        let hex_id = familiar.len() == 64 && familiar.bytes().all(|b| b.is_ascii_hexdigit());
        if !looks_like_domain && !hex_id {
            let back = Reference::parse_normalized(&familiar).unwrap_or_else(|e| {
                panic!("{s:?}: familiar form {familiar:?} does not parse: {e}")
            });
            assert!(back == r, "{s:?} -> {familiar:?} -> {back:?}");
        }
        let _ = r.clone().with_default_tag().familiar_name();
    }
});
