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

/// The heaps ruzstd decodes into, one arena each. Where the RAM has room (`cfg(board_heaps)`:
/// RV32 `virt`, `mps2-an385`), one arena per board of exactly the zstd heap its firmware
/// leaves (`tally_core::frame::BOARDS`, same order), on the boards' allocator (`LlffHeap`), so
/// a decode that would not fit a board's heap fails here as it would there. Elsewhere (the
/// Cortex-M3's 64 KiB RAM) one arena of 40 KiB next to the suite's stack.
#[cfg(all(feature = "zstd", board_heaps))]
pub const ARENAS: [usize; tally_core::frame::BOARDS.len()] = {
    let b = tally_core::frame::BOARDS;
    let mut sizes = [0; tally_core::frame::BOARDS.len()];
    let mut i = 0;
    while i < sizes.len() {
        sizes[i] = b[i].zstd_heap;
        i += 1;
    }
    sizes
};
#[cfg(all(feature = "zstd", not(board_heaps)))]
pub const ARENAS: [usize; 1] = [40 * 1024];

#[cfg(feature = "zstd")]
const ARENA_BYTES: usize = {
    let mut sum = 0;
    let mut i = 0;
    while i < ARENAS.len() {
        sum += ARENAS[i];
        i += 1;
    }
    sum
};

#[cfg(feature = "zstd")]
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The arenas, the one that allocations go to now, and each one's high-water mark.
#[cfg(feature = "zstd")]
struct Arenas {
    heaps: [embedded_alloc::LlffHeap; ARENAS.len()],
    start: AtomicUsize,
    current: AtomicUsize,
    peak: [AtomicUsize; ARENAS.len()],
}

#[cfg(feature = "zstd")]
impl Arenas {
    /// The arena that holds `ptr`.
    fn owner(&self, ptr: *mut u8) -> usize {
        let mut low = self.start.load(Relaxed);
        let addr = ptr as usize;
        for (i, size) in ARENAS.iter().enumerate() {
            if addr >= low && addr < low + size {
                return i;
            }
            low += size;
        }
        0
    }
}

#[cfg(feature = "zstd")]
// SAFETY: forwards to LlffHeap, which upholds GlobalAlloc's contract; a block is freed in the
// arena whose address range holds it, the one that allocated it.
unsafe impl core::alloc::GlobalAlloc for Arenas {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        let i = self.current.load(Relaxed);
        let Some(heap) = self.heaps.get(i) else {
            return core::ptr::null_mut();
        };
        // SAFETY: same contract as the caller's.
        let p = unsafe { heap.alloc(layout) };
        if p.is_null() {
            crate::println!(
                "  heap exhausted: {} B asked with {} B of {} B in use",
                layout.size(),
                heap.used(),
                ARENAS.get(i).copied().unwrap_or(0)
            );
        }
        // Loads and stores only: thumbv6m has no atomic read-modify-write (one core, no
        // allocation from interrupts).
        if let Some(peak) = self.peak.get(i) {
            if heap.used() > peak.load(Relaxed) {
                peak.store(heap.used(), Relaxed);
            }
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        if let Some(heap) = self.heaps.get(self.owner(ptr)) {
            // SAFETY: same contract as the caller's; `ptr` came from this arena.
            unsafe { heap.dealloc(ptr, layout) }
        }
    }
}

#[cfg(feature = "zstd")]
#[global_allocator]
static HEAP: Arenas = Arenas {
    heaps: [const { embedded_alloc::LlffHeap::empty() }; ARENAS.len()],
    start: AtomicUsize::new(0),
    current: AtomicUsize::new(0),
    peak: [const { AtomicUsize::new(0) }; ARENAS.len()],
};

/// Hands the arenas their memory; call once, first thing. Allocations go to arena 0.
pub fn init_heap() {
    #[cfg(feature = "zstd")]
    {
        use core::mem::MaybeUninit;
        static mut MEMORY: [MaybeUninit<u8>; ARENA_BYTES] = [MaybeUninit::uninit(); ARENA_BYTES];
        let start = core::ptr::addr_of_mut!(MEMORY) as usize;
        HEAP.start.store(start, Relaxed);
        let mut at = start;
        for (heap, size) in HEAP.heaps.iter().zip(ARENAS) {
            // SAFETY: called once before any allocation; each arena is its own part of MEMORY,
            // which nothing else uses.
            unsafe { heap.init(at, size) }
            at += size;
        }
    }
}

/// Heap bytes in use now in the current arena, and the most ever in use there.
#[cfg(feature = "zstd")]
pub fn heap_usage() -> (usize, usize) {
    let i = HEAP.current.load(Relaxed);
    (
        HEAP.heaps.get(i).map_or(0, |h| h.used()),
        HEAP.peak.get(i).map_or(0, |p| p.load(Relaxed)),
    )
}

/// Heap bytes in use now in arena `arena`.
#[cfg(all(feature = "zstd", board_heaps))]
pub fn arena_in_use(arena: usize) -> usize {
    HEAP.heaps.get(arena).map_or(0, |h| h.used())
}

/// Runs `f` with its allocations in arena `arena` (its size: `ARENAS[arena]`); returns what
/// `f` returned and the most heap it had in use there at once (its high-water mark).
#[cfg(feature = "zstd")]
pub fn in_arena<R>(arena: usize, f: impl FnOnce() -> R) -> (R, usize) {
    let before = HEAP.current.load(Relaxed);
    HEAP.current.store(arena, Relaxed);
    let in_use = HEAP.heaps.get(arena).map_or(0, |h| h.used());
    if let Some(p) = HEAP.peak.get(arena) {
        p.store(in_use, Relaxed);
    }
    let r = f();
    let peak = HEAP.peak.get(arena).map_or(0, |p| p.load(Relaxed));
    HEAP.current.store(before, Relaxed);
    (r, peak.saturating_sub(in_use))
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
