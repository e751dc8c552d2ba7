//! Where packets come from: a local `.aez` file (URLs come with the streaming client).

use std::fs::File;
use std::io::{BufReader, Read};

use aecodec::container::{ContainerError, ContainerReader};

/// Why a source could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {cause}")]
    Open { path: String, cause: std::io::Error },
    #[error("{path}: {cause}")]
    Container { path: String, cause: ContainerError },
}

/// A streaming packet reader over any byte source.
pub type PacketReader = ContainerReader<Box<dyn Read + Send>>;

/// Opens a source (a file path) and reads its header.
pub fn open_source(source: &str) -> Result<PacketReader, SourceError> {
    let file = File::open(source).map_err(|e| SourceError::Open {
        path: source.into(),
        cause: e,
    })?;
    let input: Box<dyn Read + Send> = Box::new(BufReader::new(file));
    ContainerReader::new(input).map_err(|e| SourceError::Container {
        path: source.into(),
        cause: e,
    })
}
