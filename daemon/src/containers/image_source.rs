//! The image store (berth-images) as the container side sees it, and the
//! container side as the image store sees it (images in use).

use std::sync::Arc;

use berth_images::{ErrorKind, ImageStore};

use super::config::ContainerConfig;
use super::core::Containers;
use super::hooks::{ImageInfo, ImageLookupError, ImageSource};

fn convert(e: berth_images::Error) -> ImageLookupError {
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::NotFound => ImageLookupError::NotFound(
            msg.strip_prefix("No such image: ")
                .unwrap_or(&msg)
                .to_string(),
        ),
        ErrorKind::InvalidArgument => ImageLookupError::Invalid(msg),
        _ => ImageLookupError::Internal(msg),
    }
}

impl ImageSource for ImageStore {
    fn lookup(&self, reference: &str) -> Result<ImageInfo, ImageLookupError> {
        let image = self.resolve(reference).map_err(convert)?;
        let layers = self.layers_of(&image).map_err(convert)?;
        let config: ContainerConfig =
            serde_json::from_value(image.container_config()).map_err(|e| {
                ImageLookupError::Internal(format!(
                    "image {} has an unreadable config: {e}",
                    image.id
                ))
            })?;
        Ok(ImageInfo {
            id: image.id.to_string(),
            config,
            layers: layers.into_iter().map(|l| l.diff_dir).collect(),
            os: image.str_field("os"),
            top_layer: image.top_layer().map(|d| d.to_string()),
        })
    }

    fn hold(&self, owner: &str, top_layer: Option<&str>) -> Result<(), ImageLookupError> {
        match top_layer {
            Some(top) => {
                let digest = berth_images::Digest::parse(top)
                    .map_err(|e| ImageLookupError::Internal(e.to_string()))?;
                self.layer_store().hold(owner, &digest).map_err(convert)
            }
            None => Ok(()),
        }
    }

    fn release(&self, owner: &str) -> Result<(), ImageLookupError> {
        self.layer_store().release(owner).map_err(convert)
    }
}

/// Lets `docker rmi` refuse images that containers use.
pub struct ImageUsers(pub Arc<Containers>);

impl berth_images::ImageUsage for ImageUsers {
    fn containers_using(&self, image: &berth_images::Digest) -> Vec<berth_images::ContainerUse> {
        self.0
            .users_of_image(&image.to_string())
            .into_iter()
            .map(|(id, running)| berth_images::ContainerUse { id, running })
            .collect()
    }
}
