//! The cost ledger: every op a backend runs reports its multiply-accumulates by precision
//! and the bytes it reads and writes, and the host-side work around the ops (sampling and
//! constraints over a vocabulary, image preparation, tokenization, decoding actions) reports
//! its operations and bytes in the same units under kinds of its own
//! ([`OpKind::is_host`]), so that a chip profile can say where that work runs. Counting is
//! lock-free (relaxed atomics), so any thread may record and any thread may read a snapshot;
//! TOPS, utilisation and energy are computed from these counts.

use std::sync::atomic::{AtomicU64, Ordering};

/// The op families a backend reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    QuantMatmul,
    DenseMatmul,
    Embedding,
    Norm,
    Rope,
    Attention,
    Activation,
    Elementwise,
    Copy,
    /// Host work: choosing a token from logits (argmax, or temperature and nucleus).
    Sample,
    /// Host work: deciding which tokens may come next (a plan grammar, an action vocabulary).
    Constrain,
    /// Host work: decoding, resizing, tiling and normalizing camera images.
    ImagePrep,
    /// Host work: text to token ids.
    Tokenize,
    /// Host work: turning a model's output into actions (FAST's inverse DCT, unnormalizing).
    ActionDecode,
}

impl OpKind {
    pub const ALL: [OpKind; 14] = [
        OpKind::QuantMatmul,
        OpKind::DenseMatmul,
        OpKind::Embedding,
        OpKind::Norm,
        OpKind::Rope,
        OpKind::Attention,
        OpKind::Activation,
        OpKind::Elementwise,
        OpKind::Copy,
        OpKind::Sample,
        OpKind::Constrain,
        OpKind::ImagePrep,
        OpKind::Tokenize,
        OpKind::ActionDecode,
    ];

    /// Whether this is host-side work around the model's ops rather than an op a backend
    /// runs: a chip profile may charge it to the robot's host CPU instead of the chip.
    pub fn is_host(self) -> bool {
        matches!(
            self,
            OpKind::Sample | OpKind::Constrain | OpKind::ImagePrep | OpKind::Tokenize | OpKind::ActionDecode
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            OpKind::QuantMatmul => "quant_matmul",
            OpKind::DenseMatmul => "dense_matmul",
            OpKind::Embedding => "embedding",
            OpKind::Norm => "norm",
            OpKind::Rope => "rope",
            OpKind::Attention => "attention",
            OpKind::Activation => "activation",
            OpKind::Elementwise => "elementwise",
            OpKind::Copy => "copy",
            OpKind::Sample => "sample",
            OpKind::Constrain => "constrain",
            OpKind::ImagePrep => "image_prep",
            OpKind::Tokenize => "tokenize",
            OpKind::ActionDecode => "action_decode",
        }
    }
}

/// The cost of one op, or a sum of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// int8 x int8 -> int32 multiply-accumulates.
    pub int8_macs: u64,
    /// Half-precision (f16/bf16) multiply-accumulates.
    pub f16_macs: u64,
    /// f32 multiply-accumulates.
    pub f32_macs: u64,
    /// Other floating-point operations (exp, division, square root, adds outside a MAC).
    pub float_ops: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl Cost {
    /// Host-side work: `ops` scalar operations (each comparison, branch and arithmetic step
    /// of the host code counted as one) reading and writing the given bytes.
    pub fn host(ops: u64, bytes_read: u64, bytes_written: u64) -> Cost {
        Cost {
            float_ops: ops,
            bytes_read,
            bytes_written,
            ..Cost::default()
        }
    }

    /// Total operations as TOPS counts them: two per multiply-accumulate, plus the rest.
    pub fn ops(&self) -> u64 {
        2 * (self.int8_macs + self.f16_macs + self.f32_macs) + self.float_ops
    }

    fn fields(&self) -> [u64; FIELDS] {
        [
            self.int8_macs,
            self.f16_macs,
            self.f32_macs,
            self.float_ops,
            self.bytes_read,
            self.bytes_written,
        ]
    }

    fn from_fields(f: [u64; FIELDS]) -> Cost {
        Cost {
            int8_macs: f[0],
            f16_macs: f[1],
            f32_macs: f[2],
            float_ops: f[3],
            bytes_read: f[4],
            bytes_written: f[5],
        }
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, rhs: Cost) {
        let (a, b) = (self.fields(), rhs.fields());
        *self = Cost::from_fields(std::array::from_fn(|i| a[i] + b[i]));
    }
}

const FIELDS: usize = 6;

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    fields: [AtomicU64; FIELDS],
}

/// Running totals per op kind.
#[derive(Default)]
pub struct Ledger {
    per_kind: [Counters; OpKind::ALL.len()],
}

/// What a ledger held at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerSnapshot {
    /// (kind, calls, cost) for every kind that ran at least once.
    pub by_kind: Vec<(OpKind, u64, Cost)>,
}

impl LedgerSnapshot {
    pub fn total(&self) -> Cost {
        let mut total = Cost::default();
        for (_, _, cost) in &self.by_kind {
            total += *cost;
        }
        total
    }

    /// This work and `other` together.
    pub fn plus(&self, other: &LedgerSnapshot) -> LedgerSnapshot {
        let mut by_kind = self.by_kind.clone();
        for &(kind, calls, cost) in &other.by_kind {
            match by_kind.iter_mut().find(|(k, _, _)| *k == kind) {
                Some((_, c, k)) => {
                    *c += calls;
                    *k += cost;
                }
                None => by_kind.push((kind, calls, cost)),
            }
        }
        LedgerSnapshot { by_kind }
    }

    /// The cost accumulated since `earlier`.
    pub fn since(&self, earlier: &LedgerSnapshot) -> LedgerSnapshot {
        let by_kind = self
            .by_kind
            .iter()
            .map(|&(kind, calls, cost)| {
                let (c0, k0) = earlier
                    .by_kind
                    .iter()
                    .find(|(k, _, _)| *k == kind)
                    .map_or((0, Cost::default()), |&(_, c, k)| (c, k));
                let (a, b) = (cost.fields(), k0.fields());
                (
                    kind,
                    calls - c0,
                    Cost::from_fields(std::array::from_fn(|i| a[i] - b[i])),
                )
            })
            .filter(|&(_, calls, _)| calls > 0)
            .collect();
        LedgerSnapshot { by_kind }
    }
}

impl Ledger {
    pub fn record(&self, kind: OpKind, cost: Cost) {
        let counters = &self.per_kind[kind as usize];
        counters.calls.fetch_add(1, Ordering::Relaxed);
        for (slot, value) in counters.fields.iter().zip(cost.fields()) {
            slot.fetch_add(value, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> LedgerSnapshot {
        let by_kind = OpKind::ALL
            .iter()
            .zip(&self.per_kind)
            .filter_map(|(&kind, c)| {
                let calls = c.calls.load(Ordering::Relaxed);
                let fields = std::array::from_fn(|i| c.fields[i].load(Ordering::Relaxed));
                (calls > 0).then_some((kind, calls, Cost::from_fields(fields)))
            })
            .collect();
        LedgerSnapshot { by_kind }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_differences_add_up() {
        let ledger = Ledger::default();
        let mm = Cost {
            int8_macs: 100,
            bytes_read: 50,
            bytes_written: 8,
            ..Cost::default()
        };
        ledger.record(OpKind::QuantMatmul, mm);
        let first = ledger.snapshot();
        ledger.record(OpKind::QuantMatmul, mm);
        ledger.record(
            OpKind::Norm,
            Cost {
                float_ops: 30,
                ..Cost::default()
            },
        );
        let second = ledger.snapshot();
        assert_eq!(second.total().int8_macs, 200);
        assert_eq!(second.total().ops(), 430);
        let delta = second.since(&first);
        assert_eq!(delta.by_kind.len(), 2);
        assert_eq!(
            delta.total(),
            Cost {
                int8_macs: 100,
                float_ops: 30,
                bytes_read: 50,
                bytes_written: 8,
                ..Cost::default()
            }
        );
    }
}
