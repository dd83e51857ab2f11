//! Outputs the in-order stage is done with, handed back to the worker thread that made them.

use crate::engine::Evaluated;

/// What the in-order stage is done with (a record's findings, once written, and its
/// observation), handed back to the worker thread that made it, to be dropped there: freeing
/// memory another thread allocated costs mimalloc a remote free and a later collection of
/// cache-cold blocks (over 4 % of a two-thread backtest); freeing its own is its fast path.
pub(super) struct Spent {
    /// Per worker thread, batches waiting for it.
    bins: Vec<std::sync::Mutex<Vec<Evaluated>>>,
}

/// Outputs handed back per batch (one lock per batch).
const SPENT_BATCH: usize = 256;

impl Spent {
    /// Bins for `threads` workers (none: outputs are dropped where they are given).
    pub(super) fn new(threads: usize) -> Spent {
        Spent {
            bins: (0..threads).map(|_| Default::default()).collect(),
        }
    }

    /// The in-order side: batches outputs per worker.
    pub(super) fn collector(&self) -> SpentCollector<'_> {
        SpentCollector {
            spent: self,
            batches: self.bins.iter().map(|_| Vec::new()).collect(),
        }
    }

    /// On a worker: drops what was handed back to this thread.
    pub(super) fn drop_own(&self) {
        let Some(bin) = rayon::current_thread_index().and_then(|i| self.bins.get(i)) else {
            return;
        };
        let batch = std::mem::take(&mut *bin.lock().unwrap_or_else(|e| e.into_inner()));
        drop(batch);
    }
}

pub(super) struct SpentCollector<'s> {
    spent: &'s Spent,
    batches: Vec<Vec<Evaluated>>,
}

impl SpentCollector<'_> {
    /// Hands `output` back to worker `producer` (dropped here without workers).
    pub(super) fn give(&mut self, producer: usize, output: Evaluated) {
        let Some(batch) = self.batches.get_mut(producer) else {
            return;
        };
        batch.push(output);
        if batch.len() >= SPENT_BATCH
            && let Some(bin) = self.spent.bins.get(producer)
        {
            let mut bin = bin.lock().unwrap_or_else(|e| e.into_inner());
            if bin.is_empty() {
                std::mem::swap(&mut *bin, batch);
            } else {
                bin.append(batch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::tests::output;

    #[test]
    fn spent_outputs_reach_the_worker_that_made_them() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let spent = Spent::new(2);
        let mut here = spent.collector();
        for _ in 0..SPENT_BATCH {
            here.give(1, output("x"));
        }
        here.give(0, output("y"));
        let lens =
            || -> Vec<usize> { spent.bins.iter().map(|b| b.lock().unwrap().len()).collect() };
        assert_eq!(
            lens(),
            [0, SPENT_BATCH],
            "a full batch is handed over, a partial one waits"
        );
        // Worker 0 drops only its own.
        pool.broadcast(|c| {
            if c.index() == 0 {
                spent.drop_own();
            }
        });
        assert_eq!(lens(), [0, SPENT_BATCH]);
        pool.broadcast(|c| {
            if c.index() == 1 {
                spent.drop_own();
            }
        });
        assert_eq!(lens(), [0, 0]);
        // Without workers, nothing is kept.
        let none = Spent::new(0);
        let mut c = none.collector();
        c.give(0, output("z"));
        assert!(c.batches.is_empty());
    }
}
