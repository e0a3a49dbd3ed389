//! One registry session: endpoint discovery (HTTPS, or plain HTTP for
//! insecure registries), the `/v2/` ping, and authorization of every
//! request (basic, or bearer tokens per scope).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use crate::auth::{AuthConfig, Challenge};
use crate::config::{parse_mirror, RegistryConfig};
use crate::endpoints::{Endpoints, Stamp};
use crate::error::{transport, Error, Result};

/// Largest error body or token response read from a registry.
const SMALL_BODY_MAX: usize = 1 << 20;

pub(crate) struct Session {
    /// `host[:port]` as the reference names it (`docker.io` is mapped).
    pub host: String,
    /// `https://host` or `http://host`.
    pub base: String,
    http: reqwest::Client,
    auth: AuthConfig,
    challenge: Option<Challenge>,
    tokens: Mutex<HashMap<String, String>>,
}

/// The registry host for a reference domain.
pub(crate) fn registry_host(domain: &str) -> &str {
    if domain == "docker.io" || domain == "index.docker.io" {
        "registry-1.docker.io"
    } else {
        domain
    }
}

fn add_certs(mut b: reqwest::ClientBuilder, dir: &Path) -> Result<reqwest::ClientBuilder> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(b);
    };
    let mut names: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    names.sort();
    for p in &names {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext == "crt" {
            let pem = std::fs::read(p)
                .map_err(|e| Error::Internal(format!("read {}: {e}", p.display())))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::Internal(format!("{}: {e}", p.display())))?
            {
                b = b.add_root_certificate(cert);
            }
        } else if ext == "cert" {
            let key = p.with_extension("key");
            let mut pem = std::fs::read(p)
                .map_err(|e| Error::Internal(format!("read {}: {e}", p.display())))?;
            let k = std::fs::read(&key).map_err(|_| {
                Error::Internal(format!(
                    "missing key {} for client certificate {}",
                    key.display(),
                    p.display()
                ))
            })?;
            pem.extend_from_slice(&k);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| Error::Internal(format!("{}: {e}", p.display())))?;
            b = b.identity(id);
        }
    }
    Ok(b)
}

/// The system's root certificates (those rustls accepts), read once: a
/// registry session is opened per pull or push, and reading the store
/// (a file per certificate) took longer than the rest of a push of
/// layers the registry already had. dockerd also reads them once.
fn system_roots() -> &'static [reqwest::Certificate] {
    static ROOTS: std::sync::OnceLock<Vec<reqwest::Certificate>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "system root certificates");
        }
        let mut check = rustls::RootCertStore::empty();
        found
            .certs
            .into_iter()
            .filter(|c| check.add(c.clone()).is_ok())
            .filter_map(|c| reqwest::Certificate::from_der(c.as_ref()).ok())
            .collect()
    })
}

pub(crate) fn build_client(
    cfg: &RegistryConfig,
    host: &str,
    insecure: bool,
) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(insecure)
        .tls_built_in_root_certs(false);
    for cert in system_roots() {
        b = b.add_root_certificate(cert.clone());
    }
    for d in &cfg.cert_dirs {
        b = add_certs(b, &d.join(host))?;
    }
    b.build()
        .map_err(|e| Error::Internal(format!("HTTP client for {host}: {e}")))
}

impl Session {
    /// Find the registry's endpoint and what authentication it wants.
    pub async fn connect(
        cfg: &RegistryConfig,
        endpoints: &Endpoints,
        domain: &str,
        auth: AuthConfig,
    ) -> Result<Session> {
        let host = registry_host(domain).to_owned();
        let insecure = cfg.is_insecure(&host).await;
        let mut bases = vec![format!("https://{host}")];
        if insecure {
            bases.push(format!("http://{host}"));
        }
        Session::open(cfg, endpoints, host, &bases, insecure, auth).await
    }

    /// A `registry-mirrors` entry, used as its URL says.
    pub async fn connect_mirror(
        cfg: &RegistryConfig,
        endpoints: &Endpoints,
        mirror: &str,
        auth: AuthConfig,
    ) -> Result<Session> {
        let (base, host) = parse_mirror(mirror)?;
        let insecure = cfg.is_insecure(&host).await;
        Session::open(cfg, endpoints, host, &[base], insecure, auth).await
    }

    /// Ping each base URL in turn; the first that answers is the endpoint.
    async fn open(
        cfg: &RegistryConfig,
        endpoints: &Endpoints,
        host: String,
        bases: &[String],
        insecure: bool,
        auth: AuthConfig,
    ) -> Result<Session> {
        let stamp = Stamp::of(&cfg.cert_dirs, &host, insecure);
        if let Some((http, base)) = endpoints.get(&host, &stamp) {
            if bases.contains(&base) {
                let mut sess = Session::new(host.clone(), base.clone(), http.clone(), auth.clone());
                match sess.ping().await {
                    Ok(resp) => {
                        sess.take_challenge(&resp);
                        endpoints.keep(&host, stamp, http, base);
                        return Ok(sess);
                    }
                    Err(e) => {
                        tracing::debug!(%base, error = %e, "kept registry endpoint failed its ping");
                        endpoints.forget(&host);
                    }
                }
            }
        }
        let http = build_client(cfg, &host, insecure)?;
        let mut sess = Session::new(host, String::new(), http, auth);
        let mut last = None;
        for base in bases {
            sess.base = base.clone();
            match sess.ping().await {
                Ok(resp) => {
                    sess.take_challenge(&resp);
                    endpoints.keep(&sess.host, stamp, sess.http.clone(), base.clone());
                    return Ok(sess);
                }
                Err(e) => {
                    tracing::debug!(%base, error = %e, "registry ping failed");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Internal("no registry endpoint to try".into())))
    }

    fn new(host: String, base: String, http: reqwest::Client, auth: AuthConfig) -> Session {
        Session {
            base,
            host,
            http,
            auth,
            challenge: None,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The authentication a 401 answer to the ping asks for.
    fn take_challenge(&mut self, ping: &Response) {
        if ping.status() == StatusCode::UNAUTHORIZED {
            self.challenge = ping
                .headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(Challenge::parse)
                .next();
        }
    }

    async fn ping(&self) -> Result<Response> {
        let url = format!("{}/v2/", self.base);
        self.http
            .get(&url)
            .send()
            .await
            .map_err(|e| transport("GET", &url, &e))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Send a request with the credentials the registry asked for.
    /// `scopes` are token scopes such as `repository:a/b:pull`.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        scopes: &[String],
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        let mut req = self.http.request(method.clone(), url);
        if let Some(h) = self.authorization(scopes).await? {
            req = req.header(reqwest::header::AUTHORIZATION, h);
        }
        build(req)
            .send()
            .await
            .map_err(|e| transport(method.as_str(), url, &e))
    }

    /// The `Authorization` header value for these scopes, if any.
    pub async fn authorization(&self, scopes: &[String]) -> Result<Option<String>> {
        if !self.auth.registrytoken.is_empty() {
            return Ok(Some(format!("Bearer {}", self.auth.registrytoken)));
        }
        match &self.challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.auth.basic().map(|(u, p)| basic_header(&u, &p))),
            Some(Challenge::Bearer { realm, service }) => {
                let key = scopes.join(" ");
                if let Some(t) = self.tokens.lock().ok().and_then(|t| t.get(&key).cloned()) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let tok = self
                    .fetch_token(realm, service.as_deref(), scopes, false)
                    .await?
                    .token;
                if let Ok(mut t) = self.tokens.lock() {
                    t.insert(key, tok.clone());
                }
                Ok(Some(format!("Bearer {tok}")))
            }
        }
    }

    /// Whether any credentials were given for this registry.
    pub fn has_credentials(&self) -> bool {
        self.auth.basic().is_some()
            || !self.auth.identitytoken.is_empty()
            || !self.auth.registrytoken.is_empty()
    }

    pub fn challenge(&self) -> Option<&Challenge> {
        self.challenge.as_ref()
    }

    /// The bearer token flow: refresh token (identity token) by POST,
    /// otherwise GET with basic credentials or anonymously.
    pub async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        offline: bool,
    ) -> Result<TokenResponse> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s.to_owned()));
        }
        for s in scopes {
            query.push(("scope", s.clone()));
        }
        let req = if !self.auth.identitytoken.is_empty() {
            let mut form = query.clone();
            form.push(("grant_type", "refresh_token".into()));
            form.push(("refresh_token", self.auth.identitytoken.clone()));
            form.push(("client_id", "docker".into()));
            let body = form
                .iter()
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect::<Vec<_>>()
                .join("&");
            self.http
                .post(realm)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body)
        } else {
            let mut req = self.http.get(realm);
            if let Some((u, p)) = self.auth.basic() {
                query.push(("account", u.clone()));
                req = req.header(reqwest::header::AUTHORIZATION, basic_header(&u, &p));
            }
            if offline {
                query.push(("offline_token", "true".into()));
                query.push(("client_id", "docker".into()));
            }
            req.query(&query)
        };
        let method = if self.auth.identitytoken.is_empty() {
            "GET"
        } else {
            "POST"
        };
        let resp = req.send().await.map_err(|e| transport(method, realm, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let msg = error_text(resp).await;
            let msg = if msg.is_empty() {
                format!(
                    "token request to {realm} failed with status: {}",
                    status_text(status)
                )
            } else {
                msg
            };
            return Err(match status {
                StatusCode::UNAUTHORIZED => Error::Unauthorized(msg),
                StatusCode::FORBIDDEN => Error::Forbidden(msg),
                _ => Error::Upstream(msg),
            });
        }
        let body = read_small(resp).await?;
        let mut t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| Error::Upstream(format!("invalid token response from {realm}: {e}")))?;
        if t.token.is_empty() {
            t.token = t.access_token.clone();
        }
        if t.token.is_empty() {
            return Err(Error::Upstream(format!(
                "token response from {realm} has no token"
            )));
        }
        Ok(t)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: String,
}

fn basic_header(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `401 Unauthorized`, as Go prints a status.
pub(crate) fn status_text(s: StatusCode) -> String {
    format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
        .trim_end()
        .to_owned()
}

/// Read a body of bounded size.
pub(crate) async fn read_small(resp: Response) -> Result<Vec<u8>> {
    read_bounded(resp, SMALL_BODY_MAX).await
}

pub(crate) async fn read_bounded(mut resp: Response, max: usize) -> Result<Vec<u8>> {
    let url = resp.url().to_string();
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport("GET", &url, &e))? {
        if out.len() + chunk.len() > max {
            return Err(Error::Upstream(format!(
                "response from {url} is larger than {max} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct RegistryErrors {
    #[serde(default)]
    errors: Vec<RegistryError>,
}

#[derive(Deserialize)]
struct RegistryError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The registry's error body as distribution's errcode package prints it
/// (`manifest unknown: manifest unknown`), or "" when it has none.
pub(crate) async fn error_text(resp: Response) -> String {
    let Ok(body) = read_small(resp).await else {
        return String::new();
    };
    let Ok(errs) = serde_json::from_slice::<RegistryErrors>(&body) else {
        return String::new();
    };
    let parts: Vec<String> = errs
        .errors
        .iter()
        .map(|e| {
            let code = e.code.to_lowercase().replace('_', " ");
            if e.message.is_empty() {
                code
            } else {
                format!("{code}: {}", e.message)
            }
        })
        .collect();
    match parts.len() {
        0 => String::new(),
        1 => parts[0].clone(),
        _ => format!("errors:\n{}\n", parts.join("\n")),
    }
}
