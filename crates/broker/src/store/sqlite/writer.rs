//! Group commit: one thread owns the store's write connection and commits
//! the writes that are waiting together.
//!
//! Every write of the store is a job sent to this thread. The thread takes
//! the first job that arrives and every job that has queued up behind it
//! (up to [`MAX_BATCH`]), runs them one after the other inside one
//! `BEGIN IMMEDIATE … COMMIT`, each in a savepoint of its own, and answers
//! each caller only once that `COMMIT` has returned. So an answered write
//! is as durable as a write committed alone (the same pragmas, the same
//! commit), while a burst of requests pays for one commit instead of one
//! each. No job waits for company: a job that finds the queue empty is
//! committed at once, so a lone request is not slowed down.
//!
//! A job that fails (or finds nothing to do and says so) is rolled back to
//! its savepoint and leaves the others' writes alone. If the `COMMIT`
//! itself fails, every job of the batch is answered with that failure,
//! since none of their writes was kept.
//!
//! Why a thread and not `spawn_blocking` with a mutex, as before: with many
//! requests in flight, each one parked a blocking-pool thread on the mutex,
//! and on two cores the context switches between them cost more than the
//! SQL did.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::secrets::CodeHasher;
use crate::store::StoreError;

/// The most jobs one transaction takes. A batch is committed once it has
/// this many even if more are waiting, so that one commit's answers go out
/// while the next batch runs, and a batch's savepoints stay few.
pub const MAX_BATCH: usize = 256;

/// One write, run inside the batch's transaction, answered after it.
trait Job: Send {
    /// Runs the write on `conn` (inside the batch's transaction) and keeps
    /// its result; returns whether its writes are to be kept.
    fn run(&mut self, conn: &Connection, hasher: &CodeHasher) -> bool;

    /// Answers the caller: with the kept result if the batch was committed
    /// (`Ok`), else with the reason it was not.
    fn answer(self: Box<Self>, batch: Result<(), &str>);
}

/// A job for a closure returning `T`.
struct Call<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

type Answer<T> = oneshot::Receiver<Result<T, StoreError>>;

impl<T, F> Call<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection, &CodeHasher) -> Result<T, StoreError> + Send + 'static,
{
    /// The job for `work`, and where its answer will arrive.
    fn job(work: F) -> (Box<dyn Job>, Answer<T>) {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Call {
            work: Some(work),
            result: None,
            reply,
        });
        (job, answer)
    }
}

impl<T, F> Job for Call<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection, &CodeHasher) -> Result<T, StoreError> + Send + 'static,
{
    fn run(&mut self, conn: &Connection, hasher: &CodeHasher) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A panic in one job must not take the writer thread (and with it
        // the whole store) down; the job's savepoint is rolled back and its
        // caller hears of a failure, as it did when a blocking task panicked.
        let result = catch_unwind(AssertUnwindSafe(|| work(conn, hasher)))
            .unwrap_or_else(|_| Err(StoreError::Backend("a store write panicked".into())));
        let keep = result.is_ok();
        self.result = Some(result);
        keep
    }

    fn answer(self: Box<Self>, batch: Result<(), &str>) {
        let result = match (batch, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Backend("a store write was not run".into())),
            (Err(why), _) => Err(StoreError::Backend(why.to_owned().into())),
        };
        // The caller may have gone away (its request was cancelled); the
        // write stands all the same, as it would have without batching.
        let _ = self.reply.send(result);
    }
}

/// The handle to the writer thread. Dropping it lets the thread finish the
/// jobs already queued, then waits for it to close the connection.
pub struct Writer {
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread on `conn`, which must not be in a transaction.
    pub fn start(conn: Connection, hasher: CodeHasher) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || serve(conn, hasher, queue))
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Queues `work` and waits for its result, which comes after the commit
    /// of the batch it ran in.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &CodeHasher) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, answer) = Call::job(work);
        let stopped = || StoreError::Backend("the store's writer thread has stopped".into());
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue is what tells the thread to stop.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: batches until the queue is closed.
fn serve(conn: Connection, hasher: CodeHasher, queue: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = commit(&conn, &hasher, &mut batch);
        if let Err(e) = &outcome {
            tracing::error!(error = %e, jobs = batch.len(), "a store batch was not committed");
            // Whatever state the failure left, the next batch starts clean.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        let why = outcome
            .as_ref()
            .map_err(|e| format!("store commit failed: {e}"));
        for job in batch.drain(..) {
            job.answer(why.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

/// Runs `batch` in one transaction and commits it.
fn commit(
    conn: &Connection,
    hasher: &CodeHasher,
    batch: &mut [Box<dyn Job>],
) -> rusqlite::Result<()> {
    let exec = |sql: &str| conn.prepare_cached(sql)?.execute([]).map(drop);
    exec("BEGIN IMMEDIATE")?;
    if let [only] = batch {
        // Alone, a job needs no savepoint: the transaction is its own.
        let keep = only.run(conn, hasher);
        if !keep && conn.is_autocommit() {
            // SQLite already rolled back on the job's error.
            return Ok(());
        }
        return exec(if keep { "COMMIT" } else { "ROLLBACK" });
    }
    for job in batch.iter_mut() {
        exec("SAVEPOINT job")?;
        if !job.run(conn, hasher) {
            exec("ROLLBACK TO job")?;
        }
        exec("RELEASE job")?;
    }
    exec("COMMIT")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<F>(work: F) -> (Box<dyn Job>, Answer<i64>)
    where
        F: FnOnce(&Connection, &CodeHasher) -> Result<i64, StoreError> + Send + 'static,
    {
        Call::job(work)
    }

    fn insert(n: i64) -> impl FnOnce(&Connection, &CodeHasher) -> Result<i64, StoreError> {
        move |conn, _| {
            conn.execute("INSERT INTO t (n) VALUES (?1)", [n])
                .map_err(|e| StoreError::Backend(Box::new(e)))?;
            Ok(n)
        }
    }

    /// One batch, as the writer thread commits it: a job that fails (here
    /// on the unique key) or panics loses only its own writes, and every
    /// caller hears its own outcome.
    #[test]
    fn a_failing_job_leaves_the_rest_of_its_batch_committed() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .unwrap();
        let hasher = CodeHasher::new(&[7; 32]);
        let (first, first_answer) = call(insert(1));
        let (clash, clash_answer) = call(|conn, hasher| {
            // Its first insert goes through, its second clashes with the
            // first job's row: the savepoint undoes both.
            insert(2)(conn, hasher)?;
            insert(1)(conn, hasher)
        });
        let (panics, panic_answer) = call(|conn, hasher| {
            insert(3)(conn, hasher)?;
            panic!("a bug in one write");
        });
        let (last, last_answer) = call(insert(4));
        let mut batch = vec![first, clash, panics, last];
        commit(&conn, &hasher, &mut batch).unwrap();
        for job in batch {
            job.answer(Ok(()));
        }
        assert_eq!(first_answer.blocking_recv().unwrap().unwrap(), 1);
        assert!(clash_answer.blocking_recv().unwrap().is_err());
        assert!(panic_answer.blocking_recv().unwrap().is_err());
        assert_eq!(last_answer.blocking_recv().unwrap().unwrap(), 4);
        let kept: Vec<i64> = conn
            .prepare("SELECT n FROM t ORDER BY n")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(kept, [1, 4]);
        assert!(conn.is_autocommit(), "the batch's transaction is closed");
    }

    /// When the batch is not committed, no caller is told its write was.
    #[test]
    fn a_failed_batch_answers_every_job_with_the_failure() {
        let (job, answer) = call(|_, _| Ok(1));
        job.answer(Err("store commit failed: disk I/O error"));
        let err = answer.blocking_recv().unwrap().unwrap_err();
        assert!(err.to_string().contains("disk I/O error"), "{err}");
    }
}
