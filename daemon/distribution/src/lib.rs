//! berth's registry client: `docker pull`, `push` and `login` over the
//! OCI distribution API.
//!
//! The HTTP layer passes an [`AuthConfig`] (decoded from `X-Registry-Auth`
//! or a login body) and a [`Progress`] channel; everything else (endpoint
//! discovery, basic and bearer-token auth, manifests, verified blob
//! transfer, layer unpacking while downloading) happens here, on top of
//! the synchronous [`berth_images::ImageStore`].

mod auth;
mod client;
mod compress;
mod config;
mod endpoints;
mod error;
mod fetch;
mod gzip;
mod inspect;
mod login;
mod manifest;
mod progress;
mod pull;
mod push;
mod search;
mod sources;
mod stats;

use std::sync::Arc;

use berth_images::ImageStore;

pub use auth::AuthConfig;
pub use config::RegistryConfig;
pub use error::{Error, ErrorKind, Result};
pub use login::LoginOutcome;
pub use manifest::Platform;
pub use progress::{human, progress_bar, Progress};
pub use pull::{PullOptions, PullOutcome};
pub use push::{PushOptions, PushOutcome};
pub use stats::{transferred, Transferred};

pub struct Distribution {
    store: Arc<ImageStore>,
    /// Replaced as a whole when the daemon reloads its configuration; an
    /// operation under way keeps the settings it started with.
    config: std::sync::RwLock<Arc<RegistryConfig>>,
    /// Registry clients kept between operations.
    endpoints: endpoints::Endpoints,
}

impl Distribution {
    pub fn new(store: Arc<ImageStore>, config: RegistryConfig) -> Result<Distribution> {
        config.validate()?;
        Ok(Distribution {
            store,
            config: std::sync::RwLock::new(Arc::new(config)),
            endpoints: Default::default(),
        })
    }

    /// The settings now in force.
    pub fn config(&self) -> Arc<RegistryConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// New mirrors, insecure registries and transfer limits for the
    /// operations that start from now on.
    pub fn set_config(&self, config: RegistryConfig) -> Result<()> {
        config.validate()?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        // Clients were built for the old insecure list.
        self.endpoints.clear();
        Ok(())
    }
}
