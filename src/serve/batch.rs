//! Group commit. Each reservation (`POST /v1/reservations`) and each finished request's usage
//! (`/v1/reservations/{id}/settle`, `/v1/usage`) is handed to one task that decides whatever
//! has queued up as one batch: one transaction, the admission lock taken once, the usage
//! recorded first (each in a savepoint of its own), then the counters read once and each
//! reservation decided in turn by the same pure rules as one at a time
//! (`ledger::admission_batch`), one commit. Nothing waits on purpose: a lone request is
//! decided at once, and requests that arrive while a batch commits form the next one, so
//! batches grow exactly as fast as the load does. Across processes and hosts the admission
//! lock is still the database's.

use tokio::sync::{mpsc, oneshot};

use crate::db::ledger::{BatchItem, RecordInput, Recorded, ReserveAsk, Reserved};
use crate::db::Db;
use crate::domain::Clock;
use crate::error::{ErrorKind, OpError};
use crate::ops::OpResult;

/// The most requests decided in one transaction.
const MAX_BATCH: usize = 256;

enum Job {
    Reserve(ReserveAsk, oneshot::Sender<OpResult<Reserved>>),
    Record(RecordInput, oneshot::Sender<OpResult<Recorded>>),
}

impl Job {
    /// Whether its caller has stopped waiting (the request's deadline passed while it was
    /// queued, or its client hung up): such a job is not decided at all, as a request cut off
    /// before its transaction committed leaves nothing.
    fn abandoned(&self) -> bool {
        match self {
            Job::Reserve(_, reply) => reply.is_closed(),
            Job::Record(_, reply) => reply.is_closed(),
        }
    }
}

/// Where reservations and usage are handed in. Cloning it is cheap; the deciding task ends
/// when the last clone is dropped and the queue is empty.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the deciding task. `clock` gives "now" for each batch; `observe` is told each
    /// batch's size.
    pub fn start(
        db: Db,
        clock: impl Fn() -> Clock + Send + 'static,
        observe: impl Fn(usize) + Send + 'static,
    ) -> Batcher {
        let (queue, mut incoming) = mpsc::channel::<Job>(4 * MAX_BATCH);
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match incoming.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                batch.retain(|job| !job.abandoned());
                if batch.is_empty() {
                    continue;
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
        self.hand_in(Job::Reserve(ask, reply)).await?;
        answer.await.map_err(|_| undecided())?
    }

    /// Records one finished request's usage (with whatever else is waiting).
    pub async fn record(&self, input: RecordInput) -> OpResult<Recorded> {
        let (reply, answer) = oneshot::channel();
        self.hand_in(Job::Record(input, reply)).await?;
        answer.await.map_err(|_| undecided())?
    }

    async fn hand_in(&self, job: Job) -> OpResult<()> {
        self.queue
            .send(job)
            .await
            .map_err(|_| OpError::new(ErrorKind::Unavailable, "the server is stopping"))
    }
}

fn undecided() -> OpError {
    OpError::internal("the request was not decided (the deciding task ended)")
}

async fn decide(db: &Db, clock: &Clock, batch: Vec<Job>) {
    let (mut records, mut record_replies) = (Vec::new(), Vec::new());
    let (mut asks, mut ask_replies) = (Vec::new(), Vec::new());
    for job in batch {
        match job {
            Job::Record(input, reply) => {
                records.push(input);
                record_replies.push(reply);
            }
            Job::Reserve(ask, reply) => {
                asks.push(ask);
                ask_replies.push(reply);
            }
        }
    }
    let waiting = |item: BatchItem| match item {
        BatchItem::Record(i) => !record_replies[i].is_closed(),
        BatchItem::Reserve(i) => !ask_replies[i].is_closed(),
    };
    match db.admission_batch(&records, &asks, clock, &waiting).await {
        Ok((recorded, reserved)) => {
            for (reply, r) in record_replies.into_iter().zip(recorded) {
                if let Some(r) = r {
                    let _ = reply.send(r.map_err(OpError::from));
                }
            }
            for (reply, r) in ask_replies.into_iter().zip(reserved) {
                let Some(r) = r else { continue };
                if let Err(Ok(unheard)) = reply.send(Ok(r)) {
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
            for reply in record_replies {
                let _ = reply.send(Err(e.clone()));
            }
            for reply in ask_replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
