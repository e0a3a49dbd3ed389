//! Request extractors whose rejections are dockerd-style JSON 400s
//! (axum's own rejections are plain text), plus dockerd's conventions for
//! query booleans and `filters`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

use super::error::{ApiError, ApiResult};

/// A JSON request body. A Content-Type other than JSON, an empty body or
/// invalid JSON is a 400 with a JSON message.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// Like [`JsonBody`], but an empty body is `None` (some endpoints take an
/// optional body).
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

fn check_content_type(req: &Request) -> ApiResult<()> {
    let Some(ct) = req.headers().get(CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.is_empty() || mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "unsupported Content-Type header ({ct}): must be 'application/json'"
        )))
    }
}

async fn body_bytes(req: Request) -> ApiResult<Bytes> {
    Bytes::from_request(req, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))
}

/// The request's method and path, for [`parse_json`].
fn route_of(req: &Request) -> (String, String) {
    (req.method().to_string(), req.uri().path().to_owned())
}

/// Parses the body of `method path`, its field names matched
/// case-insensitively as dockerd matches them.
fn parse_json<T: DeserializeOwned>((method, path): (String, String), bytes: &[u8]) -> ApiResult<T> {
    let invalid = |e: serde_json::Error| ApiError::bad_request(format!("invalid JSON: {e}"));
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    super::body_keys::canonicalize(&method, &path, &mut value);
    serde_json::from_value(value).map_err(invalid)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        check_content_type(&req)?;
        let route = route_of(&req);
        let bytes = body_bytes(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("invalid JSON: request body is empty"));
        }
        parse_json(route, &bytes).map(JsonBody)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        check_content_type(&req)?;
        let route = route_of(&req);
        let bytes = body_bytes(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        parse_json(route, &bytes).map(|v| OptionalJsonBody(Some(v)))
    }
}

/// The query string as ordered key/value pairs, with dockerd's typed
/// getters. Parameters may repeat (e.g. `changes`).
#[derive(Debug, Clone, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(QueryParams::parse(parts.uri.query().unwrap_or("")))
    }
}

impl QueryParams {
    pub fn parse(query: &str) -> Self {
        let pairs = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        QueryParams { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated `key`, in order.
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// dockerd's BoolValue: absent, "", "0", "no", "false", "none" are false
    /// (case-insensitive); anything else is true.
    pub fn bool(&self, key: &str) -> bool {
        self.get(key).map(parse_bool).unwrap_or(false)
    }

    /// Like [`Self::bool`] but `default` when the key is absent or empty.
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None | Some("") => default,
            Some(v) => parse_bool(v),
        }
    }

    /// An integer parameter; absent or empty is `None`, garbage a 400.
    pub fn i64(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {key}: {v:?} is not an integer"))
            }),
        }
    }

    /// The `filters` parameter (see [`Filters::parse`]).
    pub fn filters(&self) -> ApiResult<Filters> {
        Filters::parse(self.get("filters").unwrap_or(""))
    }
}

/// dockerd's BoolValue on one value.
pub fn parse_bool(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    !matches!(v.as_str(), "" | "0" | "no" | "false" | "none")
}

/// A `filters` argument: filter name -> accepted values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    map: BTreeMap<String, Vec<String>>,
}

impl Filters {
    /// Accepts `{"name":["a","b"]}` and the legacy `{"name":{"a":true}}`;
    /// an empty string means no filters.
    pub fn parse(raw: &str) -> ApiResult<Filters> {
        if raw.trim().is_empty() {
            return Ok(Filters::default());
        }
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
        let obj = value.as_object().ok_or_else(|| {
            ApiError::bad_request("invalid filter: filters must be a JSON object")
        })?;
        let mut map = BTreeMap::new();
        for (name, values) in obj {
            let list: Vec<String> = match values {
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_owned).ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "invalid filter: values of '{name}' must be strings"
                            ))
                        })
                    })
                    .collect::<ApiResult<_>>()?,
                serde_json::Value::Object(items) => items
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(v, _)| v.clone())
                    .collect(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter: values of '{name}' must be a list or a map"
                    )))
                }
            };
            map.insert(name.clone(), list);
        }
        Ok(Filters { map })
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A 400 `invalid filter 'x'` for any filter name not in `allowed`.
    pub fn validate(&self, allowed: &[&str]) -> ApiResult<()> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(bad) => Err(ApiError::bad_request(format!("invalid filter '{bad}'"))),
            None => Ok(()),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The values given for `name` (empty when absent).
    pub fn get(&self, name: &str) -> &[String] {
        self.map.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when `name` is not filtered on or one of its values is `value`.
    pub fn matches_exact(&self, name: &str, value: &str) -> bool {
        match self.map.get(name) {
            None => true,
            Some(values) => values.iter().any(|v| v == value),
        }
    }

    /// True when `name` is not filtered on or `pred` holds for some value.
    pub fn matches_any(&self, name: &str, pred: impl Fn(&str) -> bool) -> bool {
        match self.map.get(name) {
            None => true,
            Some(values) => values.iter().any(|v| pred(v)),
        }
    }

    /// `label` filters as dockerd applies them: every given `key` or
    /// `key=value` (or `key!=value`) must hold for `labels`.
    pub fn matches_labels<'a>(
        &self,
        name: &str,
        mut lookup: impl FnMut(&str) -> Option<&'a str>,
    ) -> bool {
        self.get(name).iter().all(|want| {
            if let Some((k, v)) = want.split_once("!=") {
                lookup(k) != Some(v)
            } else if let Some((k, v)) = want.split_once('=') {
                lookup(k) == Some(v)
            } else {
                lookup(want).is_some()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_like_dockerd() {
        for t in ["1", "true", "True", "yes", "anything"] {
            assert!(parse_bool(t), "{t}");
        }
        for f in ["", "0", "false", "FALSE", "no", "none"] {
            assert!(!parse_bool(f), "{f}");
        }
        let q = QueryParams::parse("all=1&size=0&force=&changes=a&changes=b");
        assert!(q.bool("all"));
        assert!(!q.bool("size"));
        assert!(!q.bool("force"));
        assert!(!q.bool("missing"));
        assert!(q.bool_or("missing", true));
        assert_eq!(q.get_all("changes"), vec!["a", "b"]);
    }

    #[test]
    fn integers() {
        let q = QueryParams::parse("t=10&n=x");
        assert_eq!(q.i64("t").unwrap(), Some(10));
        assert_eq!(q.i64("none").unwrap(), None);
        assert_eq!(q.i64("n").unwrap_err().status, 400);
    }

    #[test]
    fn filters_both_formats() {
        let a = Filters::parse(r#"{"label":["a=b","c"],"dangling":["true"]}"#).unwrap();
        let b =
            Filters::parse(r#"{"label":{"a=b":true,"c":true},"dangling":{"true":true}}"#).unwrap();
        assert_eq!(a, b);
        assert!(a.validate(&["label", "dangling"]).is_ok());
        assert_eq!(
            a.validate(&["label"]).unwrap_err().message,
            "invalid filter 'dangling'"
        );
        assert!(Filters::parse("").unwrap().is_empty());
        assert_eq!(Filters::parse("[1]").unwrap_err().status, 400);
        assert_eq!(Filters::parse("{nope").unwrap_err().status, 400);
    }

    #[test]
    fn label_matching() {
        let f = Filters::parse(r#"{"label":["a=b","c"]}"#).unwrap();
        let labels = [("a", "b"), ("c", "")];
        let lookup = |k: &str| labels.iter().find(|(lk, _)| *lk == k).map(|(_, v)| *v);
        assert!(f.matches_labels("label", lookup));
        let f = Filters::parse(r#"{"label":["a=x"]}"#).unwrap();
        assert!(!f.matches_labels("label", lookup));
        let f = Filters::parse(r#"{"label":["a!=x"]}"#).unwrap();
        assert!(f.matches_labels("label", lookup));
    }
}
