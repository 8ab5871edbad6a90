//! What differs between the emulated machines: entry point, semihosting output and exit, the
//! panic handler, and (with `zstd`) the heap.

#[cfg(target_arch = "arm")]
pub use cortex_m_rt::entry;
#[cfg(target_arch = "riscv32")]
pub use riscv_rt::entry;

#[cfg(target_arch = "arm")]
use cortex_m_semihosting::{debug, hio};
#[cfg(target_arch = "riscv32")]
use riscv_semihosting::{debug, hio};

/// Writes to the host's stdout through semihosting.
pub struct Out;

impl core::fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        match hio::hstdout() {
            Ok(mut h) => h.write_all(s.as_bytes()).map_err(|_| core::fmt::Error),
            Err(()) => Err(core::fmt::Error),
        }
    }
}

/// `println!` over semihosting.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::platform::Out, $($arg)*);
    }};
}

/// Ends the emulation with status 0 (`ok`) or 1.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::println!("PANIC: {}", info);
    crate::println!("0 passed, 1 failed");
    exit(false)
}

/// Bytes reserved for the heap that ruzstd decodes into: on RV32, the 60 KiB the boards
/// reserve (decoding the largest accepted message peaked at 47-54 KB here); the Cortex-M3's
/// 64 KiB RAM only fits 40 KiB next to the suite's stack, enough for the 1.5 KB message.
#[cfg(feature = "zstd")]
pub const HEAP_BYTES: usize = if cfg!(target_arch = "riscv32") {
    60 * 1024
} else {
    40 * 1024
};

/// The heap, wrapped to record its high-water mark (what a board's heap must hold).
#[cfg(feature = "zstd")]
struct PeakHeap {
    heap: embedded_alloc::LlffHeap,
    peak: core::sync::atomic::AtomicUsize,
}

#[cfg(feature = "zstd")]
// SAFETY: forwards to LlffHeap, which upholds GlobalAlloc's contract; only reads `used()` after.
unsafe impl core::alloc::GlobalAlloc for PeakHeap {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { self.heap.alloc(layout) };
        let used = self.heap.used();
        if used > self.peak.load(core::sync::atomic::Ordering::Relaxed) {
            self.peak.store(used, core::sync::atomic::Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
}

#[cfg(feature = "zstd")]
#[global_allocator]
static HEAP: PeakHeap = PeakHeap {
    heap: embedded_alloc::LlffHeap::empty(),
    peak: core::sync::atomic::AtomicUsize::new(0),
};

/// Hands the heap its memory; call once, first thing.
pub fn init_heap() {
    #[cfg(feature = "zstd")]
    {
        use core::mem::MaybeUninit;
        static mut MEMORY: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];
        // SAFETY: called once before any allocation; MEMORY is used by nothing else.
        unsafe {
            HEAP.heap
                .init(core::ptr::addr_of_mut!(MEMORY) as usize, HEAP_BYTES)
        }
    }
}

/// Heap bytes in use now, and the most ever in use.
#[cfg(feature = "zstd")]
pub fn heap_usage() -> (usize, usize) {
    (
        HEAP.heap.used(),
        HEAP.peak.load(core::sync::atomic::Ordering::Relaxed),
    )
}

/// Stack painting (Cortex-M): fills the free RAM between the statics and the stack with a
/// pattern, so that [`stack_peak`] can tell how deep the stack has reached since.
#[cfg(target_arch = "arm")]
mod stack {
    const PAINT: u32 = 0x5a5a_5a5a;
    extern "C" {
        static mut __sheap: u32;
        static _stack_start: u32;
    }

    fn bounds() -> (*mut u32, usize) {
        let low = core::ptr::addr_of_mut!(__sheap);
        let top = core::ptr::addr_of!(_stack_start) as usize;
        (low, top)
    }

    pub fn paint() {
        let (low, _) = bounds();
        // Leave 512 bytes below the current stack pointer untouched.
        let sp = cortex_m::register::msp::read() as usize - 512;
        let mut p = low;
        while (p as usize) < sp {
            // SAFETY: between the end of the statics and below the live stack: unused RAM.
            unsafe { p.write_volatile(PAINT) };
            p = p.wrapping_add(1);
        }
    }

    pub fn peak() -> usize {
        let (low, top) = bounds();
        let mut p = low;
        // SAFETY: reads RAM between the statics and the stack top.
        while (p as usize) < top && unsafe { p.read_volatile() } == PAINT {
            p = p.wrapping_add(1);
        }
        top - p as usize
    }
}

/// Paints the free stack (Cortex-M only).
pub fn paint_stack() {
    #[cfg(target_arch = "arm")]
    stack::paint();
}

/// Deepest stack use since [`paint_stack`], in bytes (0 where not measured).
pub fn stack_peak() -> usize {
    #[cfg(target_arch = "arm")]
    {
        stack::peak()
    }
    #[cfg(not(target_arch = "arm"))]
    {
        0
    }
}
