//! Credentials as the Engine API passes them (`X-Registry-Auth`, the body
//! of `POST /auth`) and the registry's `WWW-Authenticate` challenges.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// dockerd's `registry.AuthConfig`. Field names are matched as Go's JSON
/// decoder matches them (see the `Deserialize` impl).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct AuthConfig {
    pub username: String,
    pub password: String,
    /// base64 of `user:password`, as in the CLI's config.json.
    pub auth: String,
    pub email: String,
    pub serveraddress: String,
    /// A refresh token from an earlier login (bearer-token registries).
    pub identitytoken: String,
    /// A bearer token to send as is.
    pub registrytoken: String,
}

impl AuthConfig {
    fn field_mut(&mut self, name: &str) -> &mut String {
        match name {
            "username" => &mut self.username,
            "password" => &mut self.password,
            "auth" => &mut self.auth,
            "email" => &mut self.email,
            "serveraddress" => &mut self.serveraddress,
            "identitytoken" => &mut self.identitytoken,
            _ => &mut self.registrytoken,
        }
    }
}

const FIELDS: [&str; 7] = [
    "username",
    "password",
    "auth",
    "email",
    "serveraddress",
    "identitytoken",
    "registrytoken",
];

/// The field a JSON key names, as Go's `encoding/json` finds it: the exact
/// name, else one equal under Unicode case folding (which also folds `ſ`
/// to `s` and the Kelvin sign to `k`).
fn field_for(key: &str) -> Option<&'static str> {
    if let Some(f) = FIELDS.iter().find(|f| **f == key) {
        return Some(f);
    }
    let fold = |c: char| match c {
        '\u{17F}' => 's',
        '\u{212A}' => 'k',
        c => c.to_ascii_lowercase(),
    };
    FIELDS
        .iter()
        .find(|f| f.chars().eq(key.chars().map(fold)))
        .copied()
}

impl<'de> Deserialize<'de> for AuthConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AuthConfig;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of registry credentials")
            }

            // Keys in document order: a later spelling of a field wins, as
            // in Go. Unknown keys are ignored, `null` leaves a field alone.
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<AuthConfig, A::Error> {
                let mut out = AuthConfig::default();
                while let Some(key) = map.next_key::<String>()? {
                    match field_for(&key) {
                        Some(field) => {
                            if let Some(v) = map.next_value::<Option<String>>()? {
                                *out.field_mut(field) = v;
                            }
                        }
                        None => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Visitor)
    }
}

impl AuthConfig {
    /// Decode an `X-Registry-Auth` header: base64url (padding optional) of
    /// the JSON object. An empty header means anonymous. Like dockerd, a
    /// header that is not valid is an error.
    pub fn from_header(h: &str) -> Result<AuthConfig> {
        let h = h.trim();
        if h.is_empty() {
            return Ok(AuthConfig::default());
        }
        let trimmed = h.trim_end_matches('=');
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|e| Error::Invalid(format!("invalid X-Registry-Auth header: {e}")))?;
        Self::from_json(&bytes)
            .map_err(|e| Error::Invalid(format!("invalid X-Registry-Auth header: {e}")))
    }

    /// Decode an `X-Registry-Config` header (what `docker build` sends):
    /// base64url of a JSON object of credentials by registry address.
    pub fn map_from_header(h: &str) -> Result<std::collections::HashMap<String, AuthConfig>> {
        let h = h.trim().trim_end_matches('=');
        if h.is_empty() {
            return Ok(Default::default());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(h))
            .map_err(|e| Error::Invalid(format!("invalid X-Registry-Config header: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Default::default());
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("invalid X-Registry-Config header: {e}")))
    }

    /// The credentials of `map` for images of `domain`: keys may carry a
    /// scheme and a path (`https://index.docker.io/v1/` names Docker Hub).
    pub fn for_domain(
        map: &std::collections::HashMap<String, AuthConfig>,
        domain: &str,
    ) -> AuthConfig {
        let normalize = |k: &str| {
            let k = k.split_once("://").map(|(_, r)| r).unwrap_or(k);
            let host = k.split('/').next().unwrap_or(k);
            match host {
                "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_owned(),
                h => h.to_owned(),
            }
        };
        let want = normalize(domain);
        map.iter()
            .find(|(k, _)| normalize(k) == want)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<AuthConfig> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(AuthConfig::default());
        }
        serde_json::from_slice(bytes).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// User name and password, from the fields or from `auth`.
    pub fn basic(&self) -> Option<(String, String)> {
        if !self.username.is_empty() {
            return Some((self.username.clone(), self.password.clone()));
        }
        if self.auth.is_empty() {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.auth.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some((u.to_owned(), p.to_owned()))
    }
}

/// What a registry's `WWW-Authenticate` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    pub fn parse(h: &str) -> Option<Challenge> {
        let h = h.trim();
        let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => {
                let params = parse_params(rest);
                let get = |k: &str| {
                    params
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.clone())
                };
                Some(Challenge::Bearer {
                    realm: get("realm")?,
                    service: get("service"),
                })
            }
            _ => None,
        }
    }
}

/// `k="v", k2=v2` (quoted strings may contain commas and escapes).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_owned(), val.trim().to_owned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_credentials_by_registry() {
        let json = r#"{"https://index.docker.io/v1/":{"username":"hub"},"127.0.0.1:5000":{"username":"local"},"http://reg.test/":{"auth":"dTpw"}}"#;
        let h = base64::engine::general_purpose::URL_SAFE.encode(json);
        let map = AuthConfig::map_from_header(&h).unwrap();
        assert_eq!(AuthConfig::for_domain(&map, "docker.io").username, "hub");
        assert_eq!(
            AuthConfig::for_domain(&map, "127.0.0.1:5000").username,
            "local"
        );
        assert_eq!(
            AuthConfig::for_domain(&map, "reg.test").basic(),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(
            AuthConfig::for_domain(&map, "other:1"),
            AuthConfig::default()
        );
        assert!(AuthConfig::map_from_header("!!").is_err());
        assert!(AuthConfig::map_from_header("").unwrap().is_empty());
    }

    #[test]
    fn header_is_base64url_with_optional_padding() {
        let json = r#"{"username":"u?>","password":"p","serveraddress":"h"}"#;
        let url = base64::engine::general_purpose::URL_SAFE.encode(json);
        let nopad = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        for h in [url, nopad] {
            let a = AuthConfig::from_header(&h).unwrap();
            assert_eq!(a.username, "u?>");
            assert_eq!(a.basic(), Some(("u?>".into(), "p".into())));
        }
        assert_eq!(AuthConfig::from_header("").unwrap(), AuthConfig::default());
        assert!(AuthConfig::from_header("!!!").is_err());
    }

    #[test]
    fn field_names_match_as_in_go() {
        let a = AuthConfig::from_json(
            br#"{"USERNAME":"u","PassWord":"p","serverAddress":"h:1","IdentityToken":"t","x":[1],"email":null}"#,
        )
        .unwrap();
        assert_eq!(a.username, "u");
        assert_eq!(a.password, "p");
        assert_eq!(a.serveraddress, "h:1");
        assert_eq!(a.identitytoken, "t");
        assert_eq!(a.email, "");
        // The last spelling wins; Go's extra folds apply.
        let a = AuthConfig::from_json(
            "{\"username\":\"a\",\"Username\":\"b\",\"\u{17F}erveraddre\u{17F}\u{17F}\":\"s\"}"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(a.username, "b");
        assert_eq!(a.serveraddress, "s");
        assert!(AuthConfig::from_json(br#"{"username":1}"#).is_err());
        assert!(AuthConfig::from_json(br#"[]"#).is_err());
        let map = AuthConfig::map_from_header(
            &base64::engine::general_purpose::URL_SAFE.encode(r#"{"r:1":{"USERNAME":"x"}}"#),
        )
        .unwrap();
        assert_eq!(map["r:1"].username, "x");
    }

    #[test]
    fn auth_field_gives_basic_credentials() {
        let a = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("joe:se:cret"),
            ..Default::default()
        };
        assert_eq!(a.basic(), Some(("joe".into(), "se:cret".into())));
    }

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.example/token",service="reg, 1",scope="repository:a:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg, 1".into())
            })
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
    }
}
