//! Plain HTTP(S) downloads the engine makes for its clients: `docker
//! import URL`, `ADD URL` and remote build contexts. Time limits apply;
//! callers bound what they read.

use std::time::Duration;

/// GET `url`; a non-2xx answer is an error naming the status, as dockerd's
/// `GetWithStatusError`.
pub async fn get(url: &str) -> Result<reqwest::Response, String> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("failed to GET {url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!(
            "failed to GET {url} with status {}: {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ));
    }
    Ok(resp)
}
