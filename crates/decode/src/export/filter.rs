//! FFmpeg filter graphs (the re-encoded clips' rotation, scaling and pixel format, the
//! audio's trimming and resampling), with FFmpeg's filter library loaded the first time a
//! graph is built rather than when the program starts.
//!
//! Why: libavfilter pulls in about 30 shared libraries that nothing else needs (BLAS, speech
//! recognition, GPU filters, subtitle renderers...). Loading and relocating them took about
//! 50 ms of CPU time at every start of the `reelsmith` binary — half its start-up, and a
//! third of the CPU time of shot detection on a 10-second clip — although only clip export
//! builds filter graphs. The functions below are therefore called through pointers looked up
//! in the library when it is first needed, so the linker (which keeps only the libraries a
//! program refers to) leaves libavfilter out of the program's dependencies. Where it is
//! linked anyway (a test binary, a platform whose linker keeps every library), loading it
//! again simply returns the copy already there.
//!
//! The library is looked for by the file name of the libavfilter version the bindings were
//! generated for, first in the folder libavcodec was loaded from (the same FFmpeg
//! installation), then on the system's library path.

use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr;
use std::sync::OnceLock;

use ff::ffi::{AVFilter, AVFilterContext, AVFilterGraph, AVFilterInOut, AVFrame};
use ffmpeg_next as ff;

/// Why a filter graph could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FilterError {
    /// FFmpeg's filter library could not be loaded.
    #[error(
        "FFmpeg's filter library could not be loaded ({0}); install libavfilter of the same \
         FFmpeg version as libavcodec (major version {major}; Debian/Ubuntu: the libavfilter \
         package), or cut clips by stream copy (ClipMode::StreamCopy, --stream-copy)",
        major = ff::ffi::LIBAVFILTER_VERSION_MAJOR
    )]
    Unavailable(String),
    /// FFmpeg refused the graph.
    #[error(transparent)]
    Ffmpeg(#[from] ff::Error),
}

type GraphAlloc = unsafe extern "C" fn() -> *mut AVFilterGraph;
type GraphFree = unsafe extern "C" fn(*mut *mut AVFilterGraph);
type GetByName = unsafe extern "C" fn(*const c_char) -> *const AVFilter;
type CreateFilter = unsafe extern "C" fn(
    *mut *mut AVFilterContext,
    *const AVFilter,
    *const c_char,
    *const c_char,
    *mut c_void,
    *mut AVFilterGraph,
) -> c_int;
type InOutAlloc = unsafe extern "C" fn() -> *mut AVFilterInOut;
type InOutFree = unsafe extern "C" fn(*mut *mut AVFilterInOut);
type ParsePtr = unsafe extern "C" fn(
    *mut AVFilterGraph,
    *const c_char,
    *mut *mut AVFilterInOut,
    *mut *mut AVFilterInOut,
    *mut c_void,
) -> c_int;
type Config = unsafe extern "C" fn(*mut AVFilterGraph, *mut c_void) -> c_int;
type FrameIo = unsafe extern "C" fn(*mut AVFilterContext, *mut AVFrame) -> c_int;

/// The functions of libavfilter that the graphs use.
struct Api {
    graph_alloc: GraphAlloc,
    graph_free: GraphFree,
    get_by_name: GetByName,
    create_filter: CreateFilter,
    inout_alloc: InOutAlloc,
    inout_free: InOutFree,
    parse_ptr: ParsePtr,
    config: Config,
    /// `av_buffersrc_add_frame`: takes the frame's references (the frame is left empty).
    source_add: FrameIo,
    /// `av_buffersink_get_frame`.
    sink_get: FrameIo,
    /// Kept loaded for the life of the program.
    _library: libloading::Library,
}

/// The file name of the libavfilter the bindings were generated for.
fn library_file() -> String {
    let major = ff::ffi::LIBAVFILTER_VERSION_MAJOR;
    if cfg!(windows) {
        format!("avfilter-{major}.dll")
    } else if cfg!(target_vendor = "apple") {
        format!("libavfilter.{major}.dylib")
    } else {
        format!("libavfilter.so.{major}")
    }
}

/// The folder libavcodec was loaded from, where the rest of the same FFmpeg lies.
#[cfg(unix)]
fn ffmpeg_folder() -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let addr = ff::ffi::avcodec_version as *const c_void;
    // SAFETY: dladdr only reads the loader's tables; `info` is a valid, writable Dl_info,
    // and `dli_fname` (when set) points to a NUL-terminated string the loader owns.
    let file = unsafe {
        if libc::dladdr(addr, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(info.dli_fname)
    };
    let file = std::path::Path::new(std::ffi::OsStr::from_bytes(file.to_bytes()));
    file.is_absolute()
        .then(|| file.parent().map(|p| p.to_path_buf()))
        .flatten()
}

#[cfg(not(unix))]
fn ffmpeg_folder() -> Option<std::path::PathBuf> {
    None
}

/// Loads libavfilter and looks up the functions.
fn load() -> Result<Api, String> {
    let file = library_file();
    let mut candidates: Vec<std::ffi::OsString> = Vec::new();
    if let Some(dir) = ffmpeg_folder() {
        let path = dir.join(&file);
        if path.exists() {
            candidates.push(path.into_os_string());
        }
    }
    candidates.push(file.clone().into());
    let mut failures = Vec::new();
    let mut library = None;
    for c in &candidates {
        // SAFETY: loading FFmpeg's filter library runs its initialisers, which only set up
        // static tables; the symbols are looked up with the types of the bindings below.
        match unsafe { libloading::Library::new(c) } {
            Ok(l) => {
                library = Some(l);
                break;
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    let Some(library) = library else {
        return Err(format!("{file}: {}", failures.join("; ")));
    };
    /// Looks up `name` as a function of type `T`.
    ///
    /// # Safety
    /// `T` must be the function's true type (the bindings' declaration).
    unsafe fn sym<T: Copy>(lib: &libloading::Library, name: &[u8]) -> Result<T, String> {
        unsafe { lib.get::<T>(name) }
            .map(|s| *s)
            .map_err(|e| e.to_string())
    }
    // SAFETY: every type is the one the bindings declare for that function (checked by
    // the `signatures_match_the_bindings` test).
    unsafe {
        Ok(Api {
            graph_alloc: sym(&library, b"avfilter_graph_alloc\0")?,
            graph_free: sym(&library, b"avfilter_graph_free\0")?,
            get_by_name: sym(&library, b"avfilter_get_by_name\0")?,
            create_filter: sym(&library, b"avfilter_graph_create_filter\0")?,
            inout_alloc: sym(&library, b"avfilter_inout_alloc\0")?,
            inout_free: sym(&library, b"avfilter_inout_free\0")?,
            parse_ptr: sym(&library, b"avfilter_graph_parse_ptr\0")?,
            config: sym(&library, b"avfilter_graph_config\0")?,
            source_add: sym(&library, b"av_buffersrc_add_frame\0")?,
            sink_get: sym(&library, b"av_buffersink_get_frame\0")?,
            _library: library,
        })
    }
}

/// The loaded library, or why it could not be loaded (tried once per program).
fn api() -> Result<&'static Api, FilterError> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load)
        .as_ref()
        .map_err(|e| FilterError::Unavailable(e.clone()))
}

/// A C string of `s`; FFmpeg's "invalid argument" when it holds a NUL.
fn c_string(s: &str) -> Result<CString, ff::Error> {
    CString::new(s).map_err(|_| ff::Error::InvalidData)
}

/// An FFmpeg return code as a result.
fn check(code: c_int) -> Result<(), ff::Error> {
    if code < 0 {
        Err(ff::Error::from(code))
    } else {
        Ok(())
    }
}

/// A filter graph `src` (named "in") → a chain of filters → `sink` (named "out").
pub(super) struct Graph {
    api: &'static Api,
    graph: *mut AVFilterGraph,
    source: *mut AVFilterContext,
    sink: *mut AVFilterContext,
}

// SAFETY: the graph is owned by this value alone and used by one thread at a time (&mut).
unsafe impl Send for Graph {}

impl Graph {
    /// Builds `src` (with `src_args`) → `spec` → `sink`.
    pub(super) fn new(
        src: &str,
        src_args: &str,
        sink: &str,
        spec: &str,
    ) -> Result<Self, FilterError> {
        let api = api()?;
        let (src, src_args, sink, spec) = (
            c_string(src)?,
            c_string(src_args)?,
            c_string(sink)?,
            c_string(spec)?,
        );
        // SAFETY: every pointer passed is either null where FFmpeg allows it, a valid C
        // string that outlives the call, or an object FFmpeg allocated and that is owned
        // here (the graph is freed by `Drop`, the in/out lists right after parsing).
        unsafe {
            let graph = (api.graph_alloc)();
            if graph.is_null() {
                return Err(OUT_OF_MEMORY.into());
            }
            let mut g = Graph {
                api,
                graph,
                source: ptr::null_mut(),
                sink: ptr::null_mut(),
            };
            g.source = g.add(&src, c"in", &src_args)?;
            g.sink = g.add(&sink, c"out", c"")?;
            let mut outputs = g.inout(c"in", g.source)?;
            let mut inputs = match g.inout(c"out", g.sink) {
                Ok(i) => i,
                Err(e) => {
                    (api.inout_free)(&mut outputs);
                    return Err(e.into());
                }
            };
            let parsed = (api.parse_ptr)(
                g.graph,
                spec.as_ptr(),
                &mut inputs,
                &mut outputs,
                ptr::null_mut(),
            );
            (api.inout_free)(&mut inputs);
            (api.inout_free)(&mut outputs);
            check(parsed)?;
            check((api.config)(g.graph, ptr::null_mut()))?;
            Ok(g)
        }
    }

    /// Adds filter `filter` as instance `name` with `args`.
    unsafe fn add(
        &mut self,
        filter: &std::ffi::CStr,
        name: &std::ffi::CStr,
        args: &std::ffi::CStr,
    ) -> Result<*mut AVFilterContext, ff::Error> {
        let f = unsafe { (self.api.get_by_name)(filter.as_ptr()) };
        if f.is_null() {
            return Err(ff::Error::FilterNotFound);
        }
        let mut ctx = ptr::null_mut();
        check(unsafe {
            (self.api.create_filter)(
                &mut ctx,
                f,
                name.as_ptr(),
                args.as_ptr(),
                ptr::null_mut(),
                self.graph,
            )
        })?;
        Ok(ctx)
    }

    /// A one-entry in/out list naming pad 0 of `ctx` as `name`.
    unsafe fn inout(
        &self,
        name: &std::ffi::CStr,
        ctx: *mut AVFilterContext,
    ) -> Result<*mut AVFilterInOut, ff::Error> {
        unsafe {
            let io = (self.api.inout_alloc)();
            if io.is_null() {
                return Err(OUT_OF_MEMORY);
            }
            (*io).name = ff::ffi::av_strdup(name.as_ptr());
            (*io).filter_ctx = ctx;
            (*io).pad_idx = 0;
            (*io).next = ptr::null_mut();
            Ok(io)
        }
    }

    /// Sends `frame` into the source; the frame is left empty (its data now belongs to
    /// the graph).
    pub(super) fn push(&mut self, frame: &ff::Frame) -> Result<(), ff::Error> {
        // SAFETY: `source` is this graph's buffer source; `frame` is a valid frame, whose
        // references the source takes (as ffmpeg-next's `Source::add` does).
        check(unsafe { (self.api.source_add)(self.source, frame.as_ptr() as *mut AVFrame) })
    }

    /// Tells the source that no frame follows.
    pub(super) fn flush(&mut self) -> Result<(), ff::Error> {
        // SAFETY: a null frame marks the end of the stream.
        check(unsafe { (self.api.source_add)(self.source, ptr::null_mut()) })
    }

    /// Takes the next filtered frame from the sink; `false` when none is ready.
    pub(super) fn pull(&mut self, frame: &mut ff::Frame) -> bool {
        // SAFETY: `sink` is this graph's buffer sink; `frame` is a valid, owned frame.
        unsafe { (self.api.sink_get)(self.sink, frame.as_mut_ptr()) >= 0 }
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: the graph was allocated by `avfilter_graph_alloc` and is freed once.
        unsafe { (self.api.graph_free)(&mut self.graph) }
    }
}

/// FFmpeg's "cannot allocate memory".
const OUT_OF_MEMORY: ff::Error = ff::Error::Other {
    errno: ff::error::ENOMEM,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The function types used with the loaded library are those of the bindings (a
    /// mismatch does not compile). Test binaries link libavfilter anyway.
    #[test]
    fn signatures_match_the_bindings() {
        let _: GraphAlloc = ff::ffi::avfilter_graph_alloc;
        let _: GraphFree = ff::ffi::avfilter_graph_free;
        let _: GetByName = ff::ffi::avfilter_get_by_name;
        let _: CreateFilter = ff::ffi::avfilter_graph_create_filter;
        let _: InOutAlloc = ff::ffi::avfilter_inout_alloc;
        let _: InOutFree = ff::ffi::avfilter_inout_free;
        let _: ParsePtr = ff::ffi::avfilter_graph_parse_ptr;
        let _: Config = ff::ffi::avfilter_graph_config;
        let _: FrameIo = ff::ffi::av_buffersrc_add_frame;
        let _: FrameIo = ff::ffi::av_buffersink_get_frame;
    }

    /// A graph builds, filters a frame and reports a bad filter by FFmpeg's error.
    #[test]
    fn builds_and_filters() {
        ff::init().unwrap();
        let mut g = Graph::new(
            "buffer",
            "video_size=64x48:pix_fmt=0:time_base=1/25:pixel_aspect=1/1",
            "buffersink",
            "scale=32:24,format=pix_fmts=yuv420p",
        )
        .expect("graph");
        let mut f = ff::frame::Video::new(ff::format::Pixel::YUV420P, 64, 48);
        f.set_pts(Some(0));
        g.push(&f).unwrap();
        g.flush().unwrap();
        let mut out = ff::frame::Video::empty();
        assert!(g.pull(&mut out));
        assert_eq!((out.width(), out.height()), (32, 24));
        assert!(!g.pull(&mut out));
        let bad = Graph::new(
            "buffer",
            "video_size=64x48:pix_fmt=0:time_base=1/25",
            "buffersink",
            "nosuchfilter",
        );
        assert!(
            matches!(bad, Err(FilterError::Ffmpeg(_))),
            "{:?}",
            bad.err()
        );
        assert!(matches!(
            Graph::new("nosuchsource", "", "buffersink", "null"),
            Err(FilterError::Ffmpeg(ff::Error::FilterNotFound))
        ));
    }
}
