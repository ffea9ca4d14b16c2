//! Group commit for reservations. Each `POST /v1/reservations` hands its ask to one task that
//! decides whatever has queued up as one batch: one transaction, the admission lock taken
//! once, the counters read once, each ask decided in turn by the same pure rules as one at a
//! time (`ledger::reserve_batch`), one commit. Nothing waits on purpose: a lone request is
//! decided at once, and requests that arrive while a batch commits form the next one, so
//! batches grow exactly as fast as the load does. Across processes and hosts the admission
//! lock is still the database's.

use tokio::sync::{mpsc, oneshot};

use crate::db::ledger::{ReserveAsk, Reserved};
use crate::db::Db;
use crate::domain::Clock;
use crate::error::OpError;
use crate::ops::OpResult;

/// The most asks decided in one transaction.
const MAX_BATCH: usize = 256;

struct Pending {
    ask: ReserveAsk,
    reply: oneshot::Sender<OpResult<Reserved>>,
}

/// Where reservations are handed in. Cloning it is cheap; the deciding task ends when the
/// last clone is dropped and the queue is empty.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Pending>,
}

impl Batcher {
    /// Starts the deciding task. `clock` gives "now" for each batch; `observe` is told each
    /// batch's size.
    pub fn start(
        db: Db,
        clock: impl Fn() -> Clock + Send + 'static,
        observe: impl Fn(usize) + Send + 'static,
    ) -> Batcher {
        let (queue, mut incoming) = mpsc::channel::<Pending>(4 * MAX_BATCH);
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match incoming.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                observe(batch.len());
                decide(&db, &clock(), batch).await;
            }
        });
        Batcher { queue }
    }

    /// Decides one reservation (with whatever else is waiting).
    pub async fn reserve(&self, ask: ReserveAsk) -> OpResult<Reserved> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { ask, reply })
            .await
            .map_err(|_| OpError::new(crate::error::ErrorKind::Unavailable, "the server is stopping"))?;
        answer.await.map_err(|_| {
            OpError::internal("the reservation was not decided (the deciding task ended)")
        })?
    }
}

async fn decide(db: &Db, clock: &Clock, batch: Vec<Pending>) {
    let asks: Vec<ReserveAsk> = batch.iter().map(|p| p.ask.clone()).collect();
    match db.reserve_batch(&asks, clock).await {
        Ok(decided) => {
            for (pending, reserved) in batch.into_iter().zip(decided) {
                if let Err(Ok(unheard)) = pending.reply.send(Ok(reserved)) {
                    // the caller is gone (its request timed out, its client hung up): a
                    // hold nobody knows of would count until its TTL, so give it back now
                    if let Some(id) = unheard.reservation_id {
                        let _ = db.release(&id, clock).await;
                    }
                }
            }
        }
        Err(e) => {
            let e = OpError::from(e);
            for pending in batch {
                let _ = pending.reply.send(Err(e.clone()));
            }
        }
    }
}
