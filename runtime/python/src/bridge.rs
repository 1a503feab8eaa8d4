//! The coroutine driver: starts handlers on the serving thread and drives the
//! asyncio loop that suspended handlers continue on.
//!
//! An `async def` handler is stepped once, directly, inside its own contextvars
//! context and registered as the loop's current task: no thread hop, no loop
//! round trip. If it suspends, the task object it ran as becomes a real task of
//! the loop (`spikard/_asyncio_bridge.py`), and the request waits for it. The
//! loop itself is driven from tokio: [`drive_loop`] waits on the selector's
//! epoll descriptor, the loop's next timer, or a wake-up from a request that
//! scheduled work, and then runs what is due.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderName;
use spikard_http::StreamSlot;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PySet, PyString, PyTuple, PyType, PyWeakrefReference};
use tokio::io::unix::AsyncFd;
use tokio::sync::{oneshot, Notify};

use crate::convert::{call_with_keywords, keywords_dict};

/// `spikard._asyncio_bridge.Bridge`: the loop, how a request's task is made
/// current and listed, and the thread pool of plain `def` handlers.
#[derive(FromPyObject)]
pub struct AsyncioHooks {
    #[pyo3(attribute("loop"))]
    pub event_loop: Py<PyAny>,
    pub task_type: Py<PyAny>,
    pub enter_task: Py<PyAny>,
    pub leave_task: Py<PyAny>,
    /// A set `asyncio.all_tasks()` reads, where a task being stepped is listed.
    pub listed_tasks: Py<PySet>,
    /// `listed_tasks` holds weak references to tasks (3.11), not tasks (3.12+).
    pub lists_weakly: bool,
    /// `(handler, kwargs) -> concurrent.futures.Future`
    pub start_sync: Py<PyAny>,
}

/// `spikard._responding.Answers`: what answering one app's requests calls into.
#[derive(FromPyObject)]
pub struct Answers {
    pub app: Py<PyAny>,
    /// Where a proxy mounts the app (`--root-path`), for `request.url`.
    pub root_path: Py<PyString>,
    /// Results found free of bytes, and any result, as JSON bytes.
    pub encode: Py<PyAny>,
    pub encode_json: Py<PyAny>,
    pub request_type: Py<PyAny>,
    pub response_type: Py<PyAny>,
    pub new_sub_response: Py<PyAny>,
    pub finish_response: Py<PyAny>,
    pub report_error: Py<PyAny>,
    pub rejection_errors: Py<PyAny>,
    pub for_exception: Py<PyAny>,
    pub validation_error_handler: Option<Py<PyAny>>,
    /// `(status, allowed) -> handler | None` for requests no route takes, when
    /// the app registered handlers for them.
    pub for_status: Option<Py<PyAny>>,
}

/// The module `spikard._logging`: where the runtime's logs go.
#[derive(FromPyObject)]
pub struct LogHooks {
    /// `(records) -> None`: writes access-log records (`access.rs`).
    pub write_access: Py<PyAny>,
    /// `() -> ((chunks) -> None) | None`: the console writer, while records
    /// would reach nothing else.
    pub access_console: Py<PyAny>,
    /// `(message) -> None`: logs a server warning.
    pub warn: Py<PyAny>,
}

/// `spikard._server.ServeContext`: every Python object a serve works with, typed
/// in the stub `spikard/_spikard.pyi`.
#[derive(FromPyObject)]
pub struct ServeContext {
    pub bridge: AsyncioHooks,
    pub answers: Answers,
    pub log: LogHooks,
}

/// Per-serve state shared by the handlers and the loop driver.
pub struct Bridge {
    pub asyncio: AsyncioHooks,
    pub answers: Answers,
    /// `(message) -> None`: a warning about how the app answers.
    pub warn: Py<PyAny>,
    /// (route, header) pairs already warned about during this serve.
    warned: Mutex<Vec<(String, HeaderName)>>,
    ready_queue: Py<PyAny>,
    names: Names,
    /// Timers the loop held after its last run; more means a handler added one.
    timers_seen: AtomicUsize,
    /// A request scheduled work on the loop.
    wake: Notify,
}

struct Names {
    request_coro: Py<PyString>,
    request_context: Py<PyString>,
    continue_: Py<PyString>,
    timer_heap: Py<PyString>,
    run_once: Py<PyString>,
    add_done_callback: Py<PyString>,
}

/// How a handler's first step ended.
pub enum Started<'py> {
    /// Finished: its return value.
    Done(Bound<'py, PyAny>),
    /// Suspended (or running in the thread pool): the answer arrives on this channel
    /// as the finished task or future.
    Pending(oneshot::Receiver<Finished>),
}

/// A suspended handler's finished task (or a sync handler's future), and when
/// it finished ([`spikard_http::stages::now`]; 0 when the request is not timed):
/// the serving thread may take a while to get to it, and that wait is not the
/// handler's.
pub struct Finished {
    pub object: Py<PyAny>,
    pub at: u64,
}

impl Bridge {
    pub fn new(
        py: Python<'_>,
        asyncio: AsyncioHooks,
        answers: Answers,
        warn: Py<PyAny>,
    ) -> PyResult<Self> {
        let event_loop = asyncio.event_loop.bind(py);
        let ready_queue = event_loop.getattr("ready_queue")?.unbind();
        let names = Names {
            request_coro: PyString::intern(py, "_request_coro").unbind(),
            request_context: PyString::intern(py, "_request_context").unbind(),
            continue_: PyString::intern(py, "_continue").unbind(),
            timer_heap: PyString::intern(py, "timer_heap").unbind(),
            run_once: PyString::intern(py, "run_once").unbind(),
            add_done_callback: PyString::intern(py, "add_done_callback").unbind(),
        };
        Ok(Bridge {
            asyncio,
            answers,
            warn,
            warned: Mutex::new(Vec::new()),
            ready_queue,
            names,
            timers_seen: AtomicUsize::new(0),
            wake: Notify::new(),
        })
    }

    /// Whether this is the first warning about `header` for route `label` in this
    /// serve (it is then remembered). Only a handler that sets such a header gets here.
    pub fn first_warning(&self, label: &str, header: &HeaderName) -> bool {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.iter().any(|(l, h)| l == label && h == header) {
            return false;
        }
        warned.push((label.to_owned(), header.clone()));
        true
    }

    /// Calls an `async def` handler and steps it once.
    pub fn start_async<'py>(
        &self,
        py: Python<'py>,
        endpoint: &Py<PyAny>,
        values: &[Bound<'py, PyAny>],
        kwnames: &Bound<'py, PyTuple>,
        timed: bool,
        slot: Option<Arc<StreamSlot>>,
    ) -> PyResult<Started<'py>> {
        // SAFETY: called with the GIL held; returns a new reference or NULL with an exception set.
        let context = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent())? };
        let coro = call_with_keywords(py, endpoint.bind(py), values, kwnames)?;
        let task = self.new_request_task(py)?;
        task.setattr(self.names.request_coro.bind(py), &coro)?;
        task.setattr(self.names.request_context.bind(py), &context)?;
        let event_loop = self.asyncio.event_loop.bind(py);
        // Listed by asyncio.all_tasks() from the first line, as a task is. A plain
        // set entry costs far less than WeakSet.add (Python code) per request.
        let listing = self.asyncio.listed_tasks.bind(py);
        let listed = if self.asyncio.lists_weakly {
            PyWeakrefReference::new(&task)?.into_any()
        } else {
            task.clone()
        };
        listing.add(&listed)?;
        let entered = self.asyncio.enter_task.bind(py).call1((event_loop, &task));
        let stepped = entered.and_then(|_| {
            let stepped = step(py, &context, &coro);
            let left = self.asyncio.leave_task.bind(py).call1((event_loop, &task));
            left.and(stepped)
        });
        // Finished, failed, or about to be registered by Task.__init__ itself.
        listing.discard(&listed)?;
        match stepped? {
            Step::Return(value) => {
                if self.loop_has_new_work(py)? {
                    self.wake.notify_one();
                }
                Ok(Started::Done(value))
            }
            Step::Yield(yielded) => {
                task.call_method1(self.names.continue_.bind(py), (event_loop, &coro, yielded))?;
                let receiver = self.on_done(py, &task, timed, slot)?;
                self.wake.notify_one();
                Ok(Started::Pending(receiver))
            }
        }
    }

    /// `RequestTask.__new__(RequestTask)`, through the type's `tp_new` slot: the
    /// object is created without `Task.__init__` (see `_asyncio_bridge.py`).
    fn new_request_task<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let task_type = self.asyncio.task_type.bind(py).cast::<PyType>()?;
        let args = PyTuple::empty(py);
        // SAFETY: `task_type` is a live type object; its `tp_new` (inherited from
        // asyncio.Future) accepts an empty argument tuple and no keywords.
        unsafe {
            let raw = task_type.as_type_ptr();
            let new = (*raw)
                .tp_new
                .ok_or_else(|| PyRuntimeError::new_err("RequestTask cannot be instantiated"))?;
            Bound::from_owned_ptr_or_err(py, new(raw, args.as_ptr(), std::ptr::null_mut()))
        }
    }

    /// Runs a plain `def` handler in the thread pool.
    pub fn start_sync<'py>(
        &self,
        py: Python<'py>,
        endpoint: &Py<PyAny>,
        values: &[Bound<'py, PyAny>],
        kwnames: &Bound<'py, PyTuple>,
        timed: bool,
        slot: Option<Arc<StreamSlot>>,
    ) -> PyResult<Started<'py>> {
        let kwargs = keywords_dict(py, values, kwnames)?;
        let future = self
            .asyncio
            .start_sync
            .bind(py)
            .call1((endpoint.bind(py), kwargs))?;
        Ok(Started::Pending(self.on_done(py, &future, timed, slot)?))
    }

    fn on_done(
        &self,
        py: Python<'_>,
        future: &Bound<'_, PyAny>,
        timed: bool,
        slot: Option<Arc<StreamSlot>>,
    ) -> PyResult<oneshot::Receiver<Finished>> {
        let (sender, receiver) = oneshot::channel();
        let callback = Bound::new(
            py,
            Completion {
                sender: Mutex::new(Some(sender)),
                timed,
                slot: Mutex::new(slot),
            },
        )?;
        future.call_method1(self.names.add_done_callback.bind(py), (callback,))?;
        Ok(receiver)
    }

    fn loop_has_new_work(&self, py: Python<'_>) -> PyResult<bool> {
        if self.ready_queue.bind(py).len()? > 0 {
            return Ok(true);
        }
        let timers = self
            .asyncio
            .event_loop
            .bind(py)
            .getattr(self.names.timer_heap.bind(py))?
            .len()?;
        Ok(timers != self.timers_seen.load(Ordering::Relaxed))
    }

    /// Runs what is due on the loop; returns how long it may sleep.
    fn run_once(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        let event_loop = self.asyncio.event_loop.bind(py);
        let next: Option<f64> = event_loop
            .call_method0(self.names.run_once.bind(py))?
            .extract()?;
        let timers = event_loop.getattr(self.names.timer_heap.bind(py))?.len()?;
        self.timers_seen.store(timers, Ordering::Relaxed);
        Ok(next)
    }
}

enum Step<'py> {
    Return(Bound<'py, PyAny>),
    Yield(Bound<'py, PyAny>),
}

/// One `coro.send(None)` inside `context`, without raising `StopIteration`.
fn step<'py>(
    py: Python<'py>,
    context: &Bound<'py, PyAny>,
    coro: &Bound<'py, PyAny>,
) -> PyResult<Step<'py>> {
    unsafe {
        if ffi::PyContext_Enter(context.as_ptr()) != 0 {
            return Err(PyErr::fetch(py));
        }
        let mut result: *mut ffi::PyObject = std::ptr::null_mut();
        let status = ffi::PyIter_Send(coro.as_ptr(), ffi::Py_None(), &mut result);
        // Take a pending exception before leaving the context.
        let error = (status == ffi::PySendResult::PYGEN_ERROR).then(|| PyErr::fetch(py));
        if ffi::PyContext_Exit(context.as_ptr()) != 0 {
            return Err(PyErr::fetch(py));
        }
        match status {
            ffi::PySendResult::PYGEN_RETURN => Ok(Step::Return(Bound::from_owned_ptr(py, result))),
            ffi::PySendResult::PYGEN_NEXT => Ok(Step::Yield(Bound::from_owned_ptr(py, result))),
            _ => Err(error.unwrap_or_else(|| PyRuntimeError::new_err("coroutine step failed"))),
        }
    }
}

/// The done-callback of a suspended handler's task (or a sync handler's future):
/// hands the finished object to the waiting request.
#[pyclass(module = "spikard._spikard")]
pub struct Completion {
    sender: Mutex<Option<oneshot::Sender<Finished>>>,
    /// Stamp the time it finished.
    timed: bool,
    /// The request's HTTP/2 handler slot, held until the handler ends even if
    /// its request is gone (its stream reset).
    slot: Mutex<Option<Arc<StreamSlot>>>,
}

#[pymethods]
impl Completion {
    fn __call__(&self, finished: Py<PyAny>) {
        let at = if self.timed {
            spikard_http::stages::now()
        } else {
            0
        };
        if let Ok(mut slot) = self.slot.lock() {
            slot.take();
        }
        let sender = self.sender.lock().ok().and_then(|mut s| s.take());
        if let Some(sender) = sender {
            // The request may be gone (client disconnected); then nobody waits.
            let _ = sender.send(Finished {
                object: finished,
                at,
            });
        }
    }
}

struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Drives the asyncio loop for as long as the server runs.
pub async fn drive_loop(bridge: Arc<Bridge>, selector_fd: RawFd) {
    // SAFETY: the selector's descriptor stays open until the loop is closed,
    // which happens only after serving (and this task) has ended.
    let selector = match unsafe { AsyncFd::register(Fd(selector_fd)) } {
        Ok(fd) => fd,
        Err(error) => {
            eprintln!("spikard: cannot watch the event loop's selector: {error}");
            return;
        }
    };
    loop {
        let next = Python::attach(|py| {
            bridge.run_once(py).unwrap_or_else(|error| {
                crate::failures::fault(py, &bridge, "the event loop", error);
                Some(0.001)
            })
        });
        if next.is_some_and(|seconds| seconds <= 0.0) {
            // More is ready now; let requests run in between.
            tokio::task::yield_now().await;
            continue;
        }
        let timer = async {
            match next {
                Some(seconds) => tokio::time::sleep(Duration::from_secs_f64(seconds)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ready = selector.readable() => {
                // Cleared before the next run, whose select(0) then sees every event.
                if let Ok(mut guard) = ready {
                    guard.clear_ready();
                }
            }
            () = bridge.wake.notified() => {}
            () = timer => {}
        }
    }
}
