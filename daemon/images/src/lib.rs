//! berth's image store: a pure, synchronous library (no HTTP, no async).
//!
//! Pieces, each with a narrow interface (containerd-style):
//! - [`content::ContentStore`]: blobs by sha256 under `<data-root>/image/blobs`
//!   (temp file, verify, fsync, rename).
//! - [`refstore::RefStore`]: `name:tag` / `name@digest` → image ID, one JSON
//!   file replaced atomically.
//! - [`mod@reference`]: Docker's reference grammar and normalisation.
//! - [`layer::LayerStore`]: layers unpacked once per chain ID under
//!   `<data-root>/overlay/layers/<chain-hex>/diff`, short links in
//!   `<data-root>/overlay/l/`, safe extraction (openat2 RESOLVE_IN_ROOT),
//!   overlay whiteouts, garbage collection from the records.
//! - [`store::ImageStore`]: the facade the daemon uses: load, save, import,
//!   list, inspect, history, tag, delete, prune.
//!
//! # For the container side
//! - Resolve what the user typed: [`store::ImageStore::resolve`]`("busybox")`
//!   → `Arc<`[`image::Image`]`>` (`id`, `config` JSON, `container_config()`),
//!   with dockerd's 400/404 errors ([`Error::kind`]).
//! - Root filesystem: [`store::ImageStore::layers_of`]`(&image)` → layers
//!   lowest first; mount overlay with
//!   `lowerdir=<top diff_dir>:...:<bottom diff_dir>` (or the shorter
//!   `short_link`s with `layer_store().root()` as working directory).
//!   Keep a container's layers alive even if its image is force-deleted:
//!   `layer_store().hold(container_id, image.top_layer())` at create,
//!   `layer_store().release(container_id)` at removal.
//! - Deletion veto: implement [`store::ImageUsage`] and pass it to
//!   [`store::ImageStore::set_usage`]; delete then answers 409 "image is
//!   being used by running/stopped container X" as dockerd does.
//! - `docker commit`: [`layer::diff::write_diff`]`(upper_dir, writer)` turns
//!   the container's overlay upper dir into a layer tar with OCI whiteouts
//!   (never following symlinks); [`store::ImageStore::create_from_diff`]
//!   takes that tar and [`import::CommitOptions`] (parent image ID, the
//!   container config, author, comment, reference) and returns the image.
//! - Events: [`store::ImageStore::set_events`] receives `load`, `tag`,
//!   `untag`, `delete`, `import`, `save`.

pub mod changes;
pub mod content;
pub mod digest;
pub mod error;
pub mod filters;
pub mod image;
pub mod import;
pub mod layer;
pub mod load;
pub mod modify;
pub mod query;
pub mod reference;
pub mod refstore;
pub mod save;
mod spool;
pub mod store;

pub use digest::Digest;
pub use error::{Error, ErrorKind, Result};
pub use image::Image;
pub use reference::{ImageRef, Reference};
pub use store::{ContainerUse, DeleteItem, ImageEvents, ImageStore, ImageUsage};
