//! The symbols of a frame's layer: their groups, each group's table, and coding and parsing
//! them with the entropy coder.

use super::*;

/// The table byte of every group for the values coded in it; `None` for a group with none.
/// A coefficient group's byte is the index of its cheapest table in the scale bank; a flag
/// group's is the chance of a set flag in 256ths (1..=255).
pub(super) fn table_indices(scheme: Scheme, symbols: &[(Group, i32)]) -> Vec<Option<u8>> {
    let mut members = vec![Vec::new(); scheme.groups()];
    for &(g, v) in symbols {
        members[usize::from(g)].push(v);
    }
    let bank = ScaleBank::get();
    members
        .iter()
        .enumerate()
        .map(|(g, m)| {
            if m.is_empty() {
                None
            } else if g >= scheme.coeff_groups() {
                let set = m.iter().filter(|&&v| v != 0).count();
                Some((256 * set / m.len()).clamp(1, 255) as u8)
            } else {
                Some(bank.cheapest_of_all(m))
            }
        })
        .collect()
}

/// The binary tables of the flag groups a frame uses, from their bytes (integers only).
pub(super) fn flag_tables(
    scheme: Scheme,
    indices: &[Option<u8>],
) -> Result<Vec<Option<CategoricalTable>>, CoderError> {
    indices
        .iter()
        .enumerate()
        .map(|(g, &index)| match index {
            Some(k) if g >= scheme.coeff_groups() => {
                let k = u64::from(k.max(1));
                Ok(Some(CategoricalTable::from_counts(0, &[256 - k, k])?))
            }
            _ => Ok(None),
        })
        .collect()
}

impl DetailLayer {
    /// The table group of every coefficient (coded or not) in the scheme written, from the
    /// coefficients before it.
    pub(super) fn groups_of(&self, q: &[i32]) -> Vec<Group> {
        let mut groups = Vec::with_capacity(q.len());
        let mut context = Context::new(WRITTEN, self.blocks());
        for (block, coeffs) in q.chunks_exact(BLOCK_COEFFS).enumerate() {
            for p in 0..3 {
                for i in 0..64 {
                    groups.push(context.group(block, p, i, q));
                }
            }
            context.done(block, coeffs);
        }
        groups
    }

    /// What is coded for `q` in `scheme`, in order, each value with its table group: per
    /// block and plane, a flag (1 if any coefficient is nonzero), then if it is set the
    /// coefficients ([`Scheme`]). The groups depend only on what comes before, so the decoder
    /// finds the same ones.
    ///
    /// `kernels`, where given, are the blocks' transforms, each said after the block's planes
    /// if one of them is set ([`Scheme::Switched`], intra layers).
    pub(super) fn symbols(
        &self,
        scheme: Scheme,
        q: &[i32],
        kernels: Option<&[Kernel]>,
    ) -> Vec<(Group, i32)> {
        let order = BandOrder::get();
        let mut symbols = Vec::new();
        let mut context = Context::new(scheme, self.blocks());
        for (block, coeffs) in q.chunks_exact(BLOCK_COEFFS).enumerate() {
            for (p, plane) in coeffs.chunks_exact(64).enumerate() {
                let set = plane.iter().any(|&v| v != 0);
                symbols.push((context.flag_group(block, p), i32::from(set)));
                if !set {
                    continue;
                }
                match scheme {
                    Scheme::Full => {
                        for (i, &v) in plane.iter().enumerate() {
                            symbols.push((context.group(block, p, i, q), v));
                        }
                    }
                    Scheme::Banded | Scheme::Switched => {
                        let last = last_band(plane).expect("a set plane");
                        for band in 0..=last {
                            for &i in order.band(band) {
                                let i = usize::from(i);
                                symbols.push((context.group(block, p, i, q), plane[i]));
                            }
                            if band + 1 < BANDS {
                                let more = i32::from(band < last);
                                symbols.push((context.end_group(block, p, band), more));
                            }
                        }
                    }
                }
            }
            if let Some(kernels) = kernels.filter(|_| coeffs.iter().any(|&v| v != 0)) {
                context.say_kernel(block, kernels[block], &mut symbols);
            }
            context.done(block, coeffs);
        }
        symbols
    }

    /// Entropy-codes quantized coefficients in `scheme`: the mask of the groups used, one
    /// table index per group used, then the ANS words.
    pub(super) fn code(
        &self,
        scheme: Scheme,
        q: &[i32],
        kernels: Option<&[Kernel]>,
    ) -> Result<Vec<u8>, CoderError> {
        let bank = ScaleBank::get();
        let symbols = self.symbols(scheme, q, kernels);
        let indices = table_indices(scheme, &symbols);
        let mut payload = vec![0u8; scheme.mask_bytes()];
        for (g, index) in indices.iter().enumerate() {
            if let Some(index) = index {
                payload[g / 8] |= 1 << (g % 8);
                payload.push(*index);
            }
        }
        let flags = flag_tables(scheme, &indices)?;
        let mut items = Vec::with_capacity(symbols.len());
        for &(g, v) in &symbols {
            match &flags[usize::from(g)] {
                Some(table) => items.push((table, v)),
                None => {
                    let index = indices[usize::from(g)].expect("every group coded has a table");
                    bank.push_symbols(index, v, &mut items);
                }
            }
        }
        entropy::write_words(&mut payload, &entropy::encode(items.into_iter())?);
        Ok(payload)
    }

    /// Parses what [`code`](Self::code) wrote in `scheme`; the groups follow as coefficients
    /// arrive. With `read_kernels` the blocks' transforms are read too (else, and for a block
    /// with no nonzero plane, a block is in the 8×8 DCT).
    pub(super) fn parse(
        &self,
        scheme: Scheme,
        payload: &[u8],
        end: StreamEnd,
        read_kernels: bool,
    ) -> Result<(Vec<i32>, Vec<Kernel>), CoderError> {
        let corrupt = |what: &str| CoderError::Payload(format!("detail layer: {what}"));
        let (groups, mask_bytes) = (scheme.groups(), scheme.mask_bytes());
        if payload.len() < mask_bytes {
            return Err(corrupt("no group mask"));
        }
        let (mask, rest) = payload.split_at(mask_bytes);
        let used: Vec<bool> = (0..groups)
            .map(|g| mask[g / 8] >> (g % 8) & 1 == 1)
            .collect();
        if groups % 8 != 0 && mask[mask_bytes - 1] >> (groups % 8) != 0 {
            return Err(corrupt("mask bits past the last group"));
        }
        let count = used.iter().filter(|&&u| u).count();
        if rest.len() < count {
            return Err(corrupt("table bytes missing"));
        }
        let (index_bytes, words) = rest.split_at(count);
        let mut indices = vec![None; groups];
        let mut next = index_bytes.iter();
        for (g, slot) in indices.iter_mut().enumerate().filter(|&(g, _)| used[g]) {
            let byte = *next.next().expect("counted above");
            *slot = Some(if g < scheme.coeff_groups() {
                entropy::check_table_index(byte)?
            } else {
                byte
            });
        }
        let table =
            |g: Group| indices[usize::from(g)].ok_or_else(|| corrupt("a group not in the mask"));
        let flags = flag_tables(scheme, &indices)?;
        let flag = |g: Group| -> Result<&CategoricalTable, CoderError> {
            table(g)?;
            Ok(flags[usize::from(g)].as_ref().expect("a flag group"))
        };
        let bank = ScaleBank::get();
        let order = BandOrder::get();
        let mut decoder = SymbolDecoder::new(words, end)?;
        let mut q = vec![0i32; self.coefficients()];
        let mut context = Context::new(scheme, self.blocks());
        for block in 0..q.len() / BLOCK_COEFFS {
            for p in 0..3 {
                if decoder.decode(flag(context.flag_group(block, p))?) == 0 {
                    continue;
                }
                decoder.check()?;
                let at = block * BLOCK_COEFFS + p * 64;
                match scheme {
                    Scheme::Full => {
                        for i in 0..64 {
                            let group = context.group(block, p, i, &q);
                            q[at + i] = bank.decode(table(group)?, &mut decoder)?;
                        }
                    }
                    Scheme::Banded | Scheme::Switched => {
                        for band in 0..BANDS {
                            for &i in order.band(band) {
                                let i = usize::from(i);
                                let group = context.group(block, p, i, &q);
                                q[at + i] = bank.decode(table(group)?, &mut decoder)?;
                            }
                            if band + 1 < BANDS {
                                let end = flag(context.end_group(block, p, band))?;
                                if decoder.decode(end) == 0 {
                                    break;
                                }
                                decoder.check()?;
                            }
                        }
                    }
                }
            }
            let coeffs = &q[block * BLOCK_COEFFS..][..BLOCK_COEFFS];
            if read_kernels && coeffs.iter().any(|&v| v != 0) {
                let (other, haar) = context.kernel_groups(block);
                let mut kernel = Kernel::Dct8;
                if decoder.decode(flag(other)?) == 1 {
                    decoder.check()?;
                    kernel = match decoder.decode(flag(haar)?) {
                        1 => Kernel::Haar,
                        _ => Kernel::Dct4,
                    };
                }
                decoder.check()?;
                context.kernels[block] = kernel;
            }
            context.done(block, coeffs);
        }
        decoder.finish()?;
        Ok((q, context.kernels))
    }
}
