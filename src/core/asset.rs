//! `Asset`: any value the app can hold, whatever file it came from.

use super::{Image, LatentTensor, Mesh, MotionSequence, PointCloud, Volume};

#[derive(Clone, Debug)]
pub enum Asset {
    Volume(Volume),
    Image(Image),
    Mesh(Mesh),
    PointCloud(PointCloud),
    /// A mesh or point-cloud sequence over time (4D).
    Motion(MotionSequence),
    /// One or more named arrays (an `.npy` gives one, a `.safetensors` file many).
    Tensors(Vec<LatentTensor>),
}

impl Asset {
    /// A short word for the kind, as the CLI's JSON uses it.
    pub fn kind(&self) -> &'static str {
        match self {
            Asset::Volume(_) => "volume",
            Asset::Image(_) => "image",
            Asset::Mesh(_) => "mesh",
            Asset::PointCloud(_) => "point_cloud",
            Asset::Motion(_) => "motion",
            Asset::Tensors(_) => "tensors",
        }
    }
}
