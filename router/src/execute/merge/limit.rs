//! OFFSET and LIMIT applied to the merged rows: the first `offset` rows are
//! skipped (held nowhere, however deep), then at most `limit` are sent.

/// OFFSET/LIMIT state of a merge.
#[derive(Debug)]
pub struct Limit {
    offset: u64,
    limit: Option<u64>,
    skipped: u64,
    /// Rows sent to the client.
    pub emitted: u64,
}

impl Limit {
    /// Skips `offset` rows, then passes `limit` (`None`: all).
    pub fn new(offset: u64, limit: Option<u64>) -> Self {
        Self {
            offset,
            limit,
            skipped: 0,
            emitted: 0,
        }
    }

    /// Whether the LIMIT's rows were all sent.
    pub fn reached(&self) -> bool {
        self.limit.is_some_and(|l| self.emitted >= l)
    }

    /// Counts the next row: `true` when it goes to the client, `false`
    /// when it is skipped by the OFFSET or past the LIMIT.
    pub fn admit(&mut self) -> bool {
        if self.reached() {
            return false;
        }
        if self.skipped < self.offset {
            self.skipped += 1;
            return false;
        }
        self.emitted += 1;
        true
    }

    /// How many rows in the merged order matter at most: OFFSET + LIMIT
    /// (`None` without a LIMIT).
    pub fn horizon(&self) -> Option<u64> {
        self.limit.map(|l| l.saturating_add(self.offset))
    }
}
