//! A tiny test runner: named checks, a tally, and the closing line `N passed, N failed`.

use crate::println;

/// Why a check failed: what was expected, in a few words.
pub type Outcome = Result<(), &'static str>;

/// Fails with `$msg` unless `$cond`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $msg:expr) => {
        if !$cond {
            return Err($msg);
        }
    };
}

/// Counts passes and failures.
#[derive(Default)]
pub struct Suite {
    passed: u32,
    failed: u32,
}

impl Suite {
    /// Runs one check and prints its result.
    pub fn run(&mut self, name: &str, check: fn() -> Outcome) {
        // Called through an opaque pointer so that no check is inlined into `main`: each
        // one's stack frame is then freed before the next (16 KiB RAM on the Cortex-M0).
        crate::platform::paint_stack();
        let outcome = core::hint::black_box(check)();
        let stack = crate::platform::stack_peak();
        if stack > 0 {
            println!("  stack {} B", stack);
        }
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("test {} ... ok", name);
            }
            Err(why) => {
                self.failed += 1;
                println!("test {} ... FAILED: {}", name, why);
            }
        }
    }

    /// Prints the closing line; true when nothing failed.
    pub fn finish(&self) -> bool {
        println!("{} passed, {} failed", self.passed, self.failed);
        self.failed == 0 && self.passed > 0
    }
}

/// Decodes hex (whitespace ignored) into `out`; returns the length.
pub fn hex(s: &str, out: &mut [u8]) -> Result<usize, &'static str> {
    let mut n = 0;
    let mut high: Option<u8> = None;
    for c in s.bytes() {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            c if c.is_ascii_whitespace() => continue,
            _ => return Err("bad hex digit"),
        };
        match high.take() {
            None => high = Some(v),
            Some(h) => {
                *out.get_mut(n).ok_or("hex fixture larger than its buffer")? = (h << 4) | v;
                n += 1;
            }
        }
    }
    if high.is_some() {
        return Err("odd number of hex digits");
    }
    Ok(n)
}

/// xorshift64*: a seeded generator for the property checks, also a `rand_core::RngCore`.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (zero is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

impl rand_core::RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.next()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            for (d, s) in chunk.iter_mut().zip(v) {
                *d = s;
            }
        }
    }
}
