//! Opening many connections at once, with a bounded number in progress.

use std::time::Duration;

use futures_util::{StreamExt, stream};

use super::{LoadError, Setup};
use crate::client::{Connection, Target};

/// Longest a single connect plus upgrade may take before the run fails.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens one connection to `target`, bounded by [`OPEN_TIMEOUT`].
pub async fn open_one(
    setup: &Setup,
    target: &Target,
    index: usize,
) -> Result<Connection, LoadError> {
    tokio::time::timeout(
        OPEN_TIMEOUT,
        Connection::open(target, setup.source_for(index)),
    )
    .await
    .map_err(|_| LoadError::ConnectTimeout(OPEN_TIMEOUT))?
    .map_err(LoadError::from)
}

/// Opens the connections with the given indices; fails if any fails.
pub async fn open_all(
    setup: &Setup,
    target: &Target,
    indices: impl Iterator<Item = usize>,
) -> Result<Vec<Connection>, LoadError> {
    stream::iter(indices)
        .map(|index| open_one(setup, target, index))
        .buffer_unordered(setup.connect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}
