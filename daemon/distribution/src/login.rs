//! `docker login`: check credentials against the registry (basic on
//! `/v2/`, or a token request for bearer-token registries).

use reqwest::{Method, StatusCode};

use crate::auth::{AuthConfig, Challenge};
use crate::client::{status_text, Session};
use crate::error::{Error, Result};
use crate::Distribution;

#[derive(Debug, Clone)]
pub struct LoginOutcome {
    pub status: String,
    /// A refresh token the registry handed out, for later requests.
    pub identity_token: String,
}

/// `host[:port]` of a login server address (`https://host/v1/` → `host`).
pub fn server_host(addr: &str) -> String {
    let a = addr.trim();
    let a = a
        .strip_prefix("https://")
        .or_else(|| a.strip_prefix("http://"))
        .unwrap_or(a);
    let host = a.split('/').next().unwrap_or("");
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_owned(),
    }
}

impl Distribution {
    pub async fn login(&self, auth: &AuthConfig) -> Result<LoginOutcome> {
        let host = server_host(&auth.serveraddress);
        let sess = Session::connect(&self.config(), &self.endpoints, &host, auth.clone()).await?;
        let ok = LoginOutcome {
            status: "Login Succeeded".into(),
            identity_token: String::new(),
        };
        match sess.challenge().cloned() {
            None => Ok(ok),
            Some(Challenge::Basic) => {
                let url = sess.url("/v2/");
                let resp = sess.send(Method::GET, &url, &[], |r| r).await?;
                let status = resp.status();
                if status.is_success() {
                    return Ok(ok);
                }
                let msg = format!(
                    "login attempt to {url} failed with status: {}",
                    status_text(status)
                );
                Err(match status {
                    StatusCode::UNAUTHORIZED => Error::Unauthorized(msg),
                    StatusCode::FORBIDDEN => Error::Forbidden(msg),
                    _ => Error::Upstream(msg),
                })
            }
            Some(Challenge::Bearer { realm, service }) => {
                if auth.basic().is_none() && auth.identitytoken.is_empty() {
                    return Err(Error::Unauthorized(
                        "no credentials given for a registry that requires a login".into(),
                    ));
                }
                let t = sess
                    .fetch_token(&realm, service.as_deref(), &[], true)
                    .await?;
                Ok(LoginOutcome {
                    identity_token: t.refresh_token,
                    ..ok
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server_host;

    #[test]
    fn server_hosts() {
        assert_eq!(server_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(server_host(""), "docker.io");
        assert_eq!(server_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(server_host("http://reg.test:5000/"), "reg.test:5000");
    }
}
