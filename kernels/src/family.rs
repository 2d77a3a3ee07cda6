//! Which family of CPU kernels runs: the best one the CPU has, or the one pinned with the
//! `BRAINSTEM_KERNELS` environment variable (`avx512-vnni`, `avx-vnni`, `avx2`,
//! `neon-dotprod`, `neon`, `scalar`), so every family can be tested and benchmarked on
//! whatever machine is at hand.
//! A family the CPU lacks is refused with an error that names what it lacks
//! ([`CpuBackend::new`](crate::CpuBackend::new) checks the variable).
//!
//! The family is fixed for the whole process the first time a kernel asks
//! ([`active`]): kernels choose their code path and weights their tile layout from it, so it
//! cannot change under loaded weights. Every kernel asks [`has`] for the instructions it
//! needs, which is true only where the CPU has them *and* the active family includes them.
//!
//! Dense f32 weights go through our own microkernels (`cpu::dense`), which follow the family
//! (AVX-512, AVX2 with FMA, NEON or plain Rust). Attention's two products go through the
//! `gemm` crate, which picks its own code path from the CPU (AVX-512 where present, with its
//! `x86-v4` feature on); pinning a family leaves those as they are.

use std::sync::OnceLock;

use crate::error::{KernelError, Result};

/// The environment variable that pins the family.
pub const ENV_VAR: &str = "BRAINSTEM_KERNELS";

/// A family of CPU kernels, by the instructions it may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFamily {
    /// AVX-512 (F, BW) with VNNI: the tiled int8 kernels, and everything of AVX2.
    Avx512Vnni,
    /// AVX2, FMA and F16C with the VEX-encoded VNNI dot product (`vpdpbusd` on 256 bits).
    AvxVnni,
    /// AVX2, FMA and F16C.
    Avx2,
    /// Arm's Advanced SIMD with the ARMv8.2 dot product (`sdot`).
    NeonDotprod,
    /// Arm's Advanced SIMD.
    Neon,
    /// Plain Rust, whatever the CPU.
    Scalar,
}

/// Instructions a kernel may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Feature {
    /// AVX2, FMA and F16C.
    Avx2,
    /// AVX-VNNI on top of [`Feature::Avx2`].
    AvxVnni,
    /// AVX-512 F and BW.
    Avx512,
    /// AVX-512 F, BW and VNNI.
    Avx512Vnni,
    Neon,
    /// The dot product on top of [`Feature::Neon`].
    NeonDotprod,
}

impl Feature {
    const ALL: [Feature; 6] = [
        Feature::Avx2,
        Feature::AvxVnni,
        Feature::Avx512,
        Feature::Avx512Vnni,
        Feature::Neon,
        Feature::NeonDotprod,
    ];
}

impl KernelFamily {
    pub const ALL: [KernelFamily; 6] = [
        KernelFamily::Avx512Vnni,
        KernelFamily::AvxVnni,
        KernelFamily::Avx2,
        KernelFamily::NeonDotprod,
        KernelFamily::Neon,
        KernelFamily::Scalar,
    ];

    /// The name `BRAINSTEM_KERNELS` takes.
    pub fn name(self) -> &'static str {
        match self {
            KernelFamily::Avx512Vnni => "avx512-vnni",
            KernelFamily::AvxVnni => "avx-vnni",
            KernelFamily::Avx2 => "avx2",
            KernelFamily::NeonDotprod => "neon-dotprod",
            KernelFamily::Neon => "neon",
            KernelFamily::Scalar => "scalar",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name.trim().to_ascii_lowercase())
    }

    /// The features the family's kernels may use.
    fn includes(self, feature: Feature) -> bool {
        use Feature as F;
        match self {
            KernelFamily::Avx512Vnni => matches!(feature, F::Avx2 | F::AvxVnni | F::Avx512 | F::Avx512Vnni),
            KernelFamily::AvxVnni => matches!(feature, F::Avx2 | F::AvxVnni),
            KernelFamily::Avx2 => feature == F::Avx2,
            KernelFamily::NeonDotprod => matches!(feature, F::Neon | F::NeonDotprod),
            KernelFamily::Neon => feature == F::Neon,
            KernelFamily::Scalar => false,
        }
    }

    /// What the family needs of the CPU beyond what every CPU has.
    fn requires(self) -> &'static [Feature] {
        match self {
            KernelFamily::Avx512Vnni => &[Feature::Avx2, Feature::Avx512Vnni],
            KernelFamily::AvxVnni => &[Feature::Avx2, Feature::AvxVnni],
            KernelFamily::Avx2 => &[Feature::Avx2],
            KernelFamily::NeonDotprod => &[Feature::Neon, Feature::NeonDotprod],
            KernelFamily::Neon => &[Feature::Neon],
            KernelFamily::Scalar => &[],
        }
    }

    /// Whether this CPU has what the family needs.
    pub fn supported(self) -> bool {
        self.requires().iter().all(|&f| cpu_has(f))
    }
}

impl std::fmt::Display for KernelFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the CPU has `feature`, whatever the family.
pub fn cpu_has(feature: Feature) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 =
            || is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c");
        let avx512 = || is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw");
        match feature {
            Feature::Avx2 => avx2(),
            Feature::AvxVnni => avx2() && is_x86_feature_detected!("avxvnni"),
            Feature::Avx512 => avx512(),
            Feature::Avx512Vnni => avx512() && is_x86_feature_detected!("avx512vnni"),
            Feature::Neon | Feature::NeonDotprod => false,
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        match feature {
            Feature::Neon => true,
            Feature::NeonDotprod => std::arch::is_aarch64_feature_detected!("dotprod"),
            _ => false,
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = feature;
        false
    }
}

/// The best family this CPU has.
pub fn detected() -> KernelFamily {
    KernelFamily::ALL
        .into_iter()
        .find(|f| f.supported())
        .unwrap_or(KernelFamily::Scalar)
}

/// The family `BRAINSTEM_KERNELS` pins, checked against this CPU; `None` when it is unset.
pub fn from_env() -> Result<Option<KernelFamily>> {
    let Some(value) = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    let family = KernelFamily::parse(&text).ok_or_else(|| KernelError::InvalidArgument {
        op: "kernel family",
        message: format!(
            "{ENV_VAR}={text:?} names no kernel family; expected one of {}",
            KernelFamily::ALL.map(KernelFamily::name).join(", ")
        ),
    })?;
    if !family.supported() {
        return Err(KernelError::InvalidArgument {
            op: "kernel family",
            message: format!(
                "{ENV_VAR}={family} needs {:?}, which this CPU lacks; it has {}",
                family.requires(),
                detected()
            ),
        });
    }
    Ok(Some(family))
}

/// The process's family and, by [`Feature`], whether its kernels may use each: worked out
/// once, since kernels ask on every call.
struct Active {
    family: KernelFamily,
    allowed: [bool; Feature::ALL.len()],
}

static ACTIVE: OnceLock<Active> = OnceLock::new();

fn active_state() -> &'static Active {
    ACTIVE.get_or_init(|| {
        let family = from_env().ok().flatten().unwrap_or_else(detected);
        Active {
            family,
            allowed: Feature::ALL.map(|f| family.includes(f) && cpu_has(f)),
        }
    })
}

/// The family every kernel of this process uses: the pinned one, else the detected one (an
/// invalid pin, which [`from_env`] reports, falls back to the detected family).
pub fn active() -> KernelFamily {
    active_state().family
}

/// Whether kernels may use `feature`: the CPU has it and the active family includes it.
pub fn has(feature: Feature) -> bool {
    active_state().allowed[feature as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for family in KernelFamily::ALL {
            assert_eq!(KernelFamily::parse(family.name()), Some(family));
        }
        assert_eq!(KernelFamily::parse(" AVX2 "), Some(KernelFamily::Avx2));
        assert_eq!(KernelFamily::parse("sse4"), None);
    }

    #[test]
    fn features_index_their_own_slot() {
        for (i, feature) in Feature::ALL.into_iter().enumerate() {
            assert_eq!(feature as usize, i);
        }
    }

    #[test]
    fn the_detected_family_is_supported_and_scalar_always_is() {
        assert!(detected().supported());
        assert!(KernelFamily::Scalar.supported());
    }

    #[test]
    fn a_family_includes_only_its_own_instructions() {
        assert!(KernelFamily::Avx2.includes(Feature::Avx2));
        assert!(!KernelFamily::Avx2.includes(Feature::AvxVnni));
        assert!(!KernelFamily::Avx2.includes(Feature::Avx512));
        assert!(!KernelFamily::AvxVnni.includes(Feature::Avx512Vnni));
        assert!(KernelFamily::Avx512Vnni.includes(Feature::Avx2));
        assert!(!KernelFamily::Scalar.includes(Feature::Avx2));
        assert!(!KernelFamily::Neon.includes(Feature::Avx2));
        assert!(!KernelFamily::Neon.includes(Feature::NeonDotprod));
        assert!(KernelFamily::NeonDotprod.includes(Feature::Neon));
    }
}
