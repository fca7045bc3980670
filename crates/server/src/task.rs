//! Owned background tasks.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::task::JoinHandle;

/// A spawned task that belongs to whoever holds this handle: dropping the handle aborts the
/// task, and awaiting it waits for the task to end (a panic or an abort counts as the end).
pub(crate) struct AbortOnDrop(JoinHandle<()>);

impl AbortOnDrop {
    /// Spawns `task` on the current runtime.
    pub(crate) fn spawn(task: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(tokio::spawn(task))
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Future for AbortOnDrop {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::AbortOnDrop;
    use std::time::Duration;

    #[tokio::test]
    async fn dropping_the_handle_stops_the_task_and_awaiting_it_waits_for_the_end() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let task = AbortOnDrop::spawn(async move {
            // Holds the sender until it is dropped with the task.
            std::future::pending::<()>().await;
            drop(tx);
        });
        drop(task);
        let closed = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(closed, Ok(None), "the aborted task still holds its sender");

        let done = AbortOnDrop::spawn(async {});
        tokio::time::timeout(Duration::from_secs(5), done)
            .await
            .expect("a finished task ends its handle");
    }
}
