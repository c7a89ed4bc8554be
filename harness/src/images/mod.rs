pub mod cache;
pub mod deb;
pub mod debian;
pub mod initramfs;
pub mod kernel;

pub use cache::Cache;
