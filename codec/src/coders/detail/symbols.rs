//! The symbols of a frame's layer: their groups, each group's table, and coding and parsing
//! them with the entropy coder.

use super::*;

/// The table byte of every group for the values coded in it; `None` for a group with none.
/// A coefficient group's byte is the index of its cheapest table in the scale bank; a flag
/// group's is the chance of a set flag in 256ths (1..=255).
pub(super) fn table_indices(scheme: Scheme, symbols: &[(Group, i32)]) -> Vec<Option<u8>> {
    own_bytes(scheme, &tables::members(scheme.groups(), symbols))
}

/// The table byte of every group for its `members` (the values coded in it).
fn own_bytes(scheme: Scheme, members: &[Vec<i32>]) -> Vec<Option<u8>> {
    members
        .iter()
        .enumerate()
        .map(|(g, m)| tables::own_byte(g >= scheme.coeff_groups(), m))
        .collect()
}

/// Writes which of `scheme`'s groups are `used`. Version 11 on (`listed`): a varint, `1` for
/// the mask that follows, or twice the number of groups used for their list (each group's
/// distance from the one before less one, as varints; the first counted from −1), whichever
/// is shorter. Before: the mask alone, bit g of byte g / 8 for group g.
fn write_groups(scheme: Scheme, used: &[bool], listed: bool, out: &mut Vec<u8>) {
    if listed {
        let mut list = Vec::new();
        let mut next = 0;
        for g in (0..used.len()).filter(|&g| used[g]) {
            varint::write_u64(&mut list, (g - next) as u64);
            next = g + 1;
        }
        let count = used.iter().filter(|&&u| u).count() as u64;
        let mut head = Vec::new();
        varint::write_u64(&mut head, 2 * count);
        if head.len() + list.len() <= 1 + scheme.mask_bytes() {
            out.extend(head);
            out.extend(list);
            return;
        }
        varint::write_u64(out, 1);
    }
    let start = out.len();
    out.resize(start + scheme.mask_bytes(), 0);
    for g in (0..used.len()).filter(|&g| used[g]) {
        out[start + g / 8] |= 1 << (g % 8);
    }
}

/// Reads what [`write_groups`] wrote from the front of `input`: which groups are used.
fn read_groups(scheme: Scheme, listed: bool, input: &mut &[u8]) -> Result<Vec<bool>, String> {
    let groups = scheme.groups();
    let mut used = vec![false; groups];
    if listed {
        let form = varint::read_u64(input).map_err(|e| format!("group count: {e}"))?;
        if form % 2 == 0 {
            let count = form / 2;
            if count > groups as u64 {
                return Err(format!("{count} groups of {groups}"));
            }
            let mut next = 0u64;
            for _ in 0..count {
                let g = next + varint::read_u64(input).map_err(|e| format!("group list: {e}"))?;
                if g >= groups as u64 {
                    return Err(format!("group {g} of {groups}"));
                }
                used[g as usize] = true;
                next = g + 1;
            }
            return Ok(used);
        }
        if form != 1 {
            return Err(format!("group form {form}"));
        }
    }
    let mask_bytes = scheme.mask_bytes();
    if input.len() < mask_bytes {
        return Err("no group mask".into());
    }
    let (mask, rest) = input.split_at(mask_bytes);
    *input = rest;
    for (g, slot) in used.iter_mut().enumerate() {
        *slot = mask[g / 8] >> (g % 8) & 1 == 1;
    }
    if !groups.is_multiple_of(8) && mask[mask_bytes - 1] >> (groups % 8) != 0 {
        return Err("mask bits past the last group".into());
    }
    Ok(used)
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
            Some(k) if g >= scheme.coeff_groups() => Ok(Some(tables::flag_table(k)?)),
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

    /// Entropy-codes quantized coefficients in `scheme`: the groups used ([`write_groups`]),
    /// one table index per group used, then the ANS words.
    pub(super) fn code(
        &self,
        scheme: Scheme,
        q: &[i32],
        kernels: Option<&[Kernel]>,
    ) -> Result<Vec<u8>, CoderError> {
        let symbols = self.symbols(scheme, q, kernels);
        let indices = table_indices(scheme, &symbols);
        self.symbols_under(scheme, symbols, &indices, indices.clone())?
            .to_bytes(self.stream_end)
    }

    /// Codes a moved frame's layer keeping the tables `kept` of the last moved frame
    /// (`tables`, version 12 on): the groups given a table byte ([`write_groups`]), their
    /// bytes, then the ANS words, each group coded under its new table or its kept one. Also
    /// returns the tables in force after it.
    pub(super) fn code_keeping(
        &self,
        scheme: Scheme,
        q: &[i32],
        kernels: Option<&[Kernel]>,
        kept: &[Option<u8>],
    ) -> Result<(Vec<u8>, tables::TableBytes), CoderError> {
        let coded = self.symbols_keeping(scheme, q, kernels, kept)?;
        Ok((coded.to_bytes(self.stream_end)?, coded.in_force))
    }

    /// The layer up to its ANS stream, as [`code_keeping`](Self::code_keeping) codes it: its
    /// head (the groups given a table byte, their bytes) and its symbols under their tables,
    /// for a stream it may share (version 16 on, after the motion field's).
    pub(super) fn symbols_keeping(
        &self,
        scheme: Scheme,
        q: &[i32],
        kernels: Option<&[Kernel]>,
        kept: &[Option<u8>],
    ) -> Result<LayerSymbols, CoderError> {
        let symbols = self.symbols(scheme, q, kernels);
        let members = tables::members(scheme.groups(), &symbols);
        let own = own_bytes(scheme, &members);
        let bits = |g: usize, byte| tables::bits(g >= scheme.coeff_groups(), byte, &members[g]);
        let given = tables::given(&own, kept, bits);
        let in_force = tables::merged(kept, &given);
        self.symbols_under(scheme, symbols, &given, in_force)
    }

    /// The head that says which groups are `given` a table byte, with their bytes, and
    /// `symbols` under the tables `in_force`.
    fn symbols_under(
        &self,
        scheme: Scheme,
        symbols: Vec<(Group, i32)>,
        given: &[Option<u8>],
        in_force: tables::TableBytes,
    ) -> Result<LayerSymbols, CoderError> {
        let used: Vec<bool> = given.iter().map(Option::is_some).collect();
        let mut head = Vec::new();
        write_groups(scheme, &used, self.lists_groups, &mut head);
        head.extend(given.iter().flatten());
        if let Some(&(g, _)) = symbols
            .iter()
            .find(|&&(g, _)| in_force[usize::from(g)].is_none())
        {
            return Err(CoderError::Payload(format!(
                "detail layer: group {g} coded with no table"
            )));
        }
        Ok(LayerSymbols {
            head,
            flags: flag_tables(scheme, &in_force)?,
            symbols,
            in_force,
        })
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
        let (q, kernels, _) = self.parse_keeping(scheme, payload, end, read_kernels, &[])?;
        Ok((q, kernels))
    }

    /// Parses what [`code_keeping`](Self::code_keeping) wrote over the tables `kept` (with
    /// none kept, what [`code`](Self::code) wrote); also returns the tables in force after it.
    pub(super) fn parse_keeping(
        &self,
        scheme: Scheme,
        payload: &[u8],
        end: StreamEnd,
        read_kernels: bool,
        kept: &[Option<u8>],
    ) -> Result<(Vec<i32>, Vec<Kernel>, tables::TableBytes), CoderError> {
        let mut words = payload;
        let tables = self.read_tables(scheme, &mut words, kept)?;
        let mut decoder = SymbolDecoder::new(words, end)?;
        let (q, kernels) = self.parse_symbols(&tables, &mut decoder, read_kernels)?;
        decoder.finish()?;
        Ok((q, kernels, tables.in_force))
    }

    /// Reads a layer's head in `scheme` from the front of `input`: the groups given a table
    /// byte and their bytes, over the tables `kept`.
    pub(super) fn read_tables(
        &self,
        scheme: Scheme,
        input: &mut &[u8],
        kept: &[Option<u8>],
    ) -> Result<LayerTables, CoderError> {
        let groups = scheme.groups();
        if kept.len() > groups {
            return Err(layer_corrupt("kept tables of another scheme"));
        }
        let used = read_groups(scheme, self.lists_groups, input).map_err(|e| layer_corrupt(&e))?;
        let count = used.iter().filter(|&&u| u).count();
        if input.len() < count {
            return Err(layer_corrupt("table bytes missing"));
        }
        let (index_bytes, rest) = input.split_at(count);
        *input = rest;
        let mut given = vec![None; groups];
        let mut next = index_bytes.iter();
        for (g, slot) in given.iter_mut().enumerate().filter(|&(g, _)| used[g]) {
            let byte = *next.next().expect("counted above");
            *slot = Some(if g < scheme.coeff_groups() {
                entropy::check_table_index(byte)?
            } else {
                byte
            });
        }
        let mut in_force = tables::merged(kept, &given);
        in_force.resize(groups, None);
        Ok(LayerTables {
            scheme,
            flags: flag_tables(scheme, &in_force)?,
            in_force,
        })
    }

    /// Reads the layer's coefficients (and with `read_kernels` its blocks' transforms) from
    /// `decoder`, under `tables` (which the caller finishes).
    pub(super) fn parse_symbols(
        &self,
        tables: &LayerTables,
        decoder: &mut SymbolDecoder,
        read_kernels: bool,
    ) -> Result<(Vec<i32>, Vec<Kernel>), CoderError> {
        let scheme = tables.scheme;
        let indices = &tables.in_force;
        let table = |g: Group| {
            indices[usize::from(g)].ok_or_else(|| layer_corrupt("a group with no table"))
        };
        let flag = |g: Group| -> Result<&CategoricalTable, CoderError> {
            table(g)?;
            Ok(tables.flags[usize::from(g)].as_ref().expect("a flag group"))
        };
        let bank = ScaleBank::get();
        let order = BandOrder::get();
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
                            q[at + i] = bank.decode(table(group)?, decoder)?;
                        }
                    }
                    Scheme::Banded | Scheme::Switched => {
                        for band in 0..BANDS {
                            for &i in order.band(band) {
                                let i = usize::from(i);
                                let group = context.group(block, p, i, &q);
                                q[at + i] = bank.decode(table(group)?, decoder)?;
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
        Ok((q, context.kernels))
    }
}

fn layer_corrupt(what: &str) -> CoderError {
    CoderError::Payload(format!("detail layer: {what}"))
}

/// A layer coded up to its ANS stream: the head to write before the stream, and the symbols
/// for it, each under its table.
pub(super) struct LayerSymbols {
    /// The groups given a table byte, and their bytes.
    pub(super) head: Vec<u8>,
    symbols: Vec<(Group, i32)>,
    flags: Vec<Option<CategoricalTable>>,
    /// The tables in force after the layer (what the next moved frame may keep).
    pub(super) in_force: tables::TableBytes,
}

impl LayerSymbols {
    /// The head, then a stream of the layer's own that ends as `end` says.
    pub(super) fn to_bytes(&self, end: StreamEnd) -> Result<Vec<u8>, CoderError> {
        let mut items = Vec::new();
        self.push_items(&mut items);
        let mut bytes = self.head.clone();
        entropy::write_stream(&mut bytes, &entropy::encode(items.into_iter())?, end);
        Ok(bytes)
    }

    /// Appends the layer's symbols, each with its table, to a stream's `items`.
    pub(super) fn push_items<'a>(&'a self, items: &mut Vec<(&'a CategoricalTable, i32)>) {
        let bank = ScaleBank::get();
        for &(g, v) in &self.symbols {
            let g = usize::from(g);
            match &self.flags[g] {
                Some(table) => items.push((table, v)),
                None => {
                    let index = self.in_force[g].expect("checked when the symbols were made");
                    bank.push_symbols(index, v, items);
                }
            }
        }
    }
}

/// A layer's head as read: the tables its symbols are coded under.
pub(super) struct LayerTables {
    scheme: Scheme,
    flags: Vec<Option<CategoricalTable>>,
    /// The tables in force after the layer.
    pub(super) in_force: tables::TableBytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups_of(used: &[usize], scheme: Scheme) -> Vec<bool> {
        let mut out = vec![false; scheme.groups()];
        used.iter().for_each(|&g| out[g] = true);
        out
    }

    #[test]
    fn few_groups_are_listed_many_masked_and_both_read_back() {
        let scheme = Scheme::Switched;
        let few = groups_of(&[0, 3, 200, 201, scheme.groups() - 1], scheme);
        let many: Vec<usize> = (0..scheme.groups()).step_by(7).collect();
        let many = groups_of(&many, scheme);
        for (used, listed, bytes) in [
            (&few, true, 1 + 1 + 1 + 2 + 1 + 2),
            (&many, true, 1 + scheme.mask_bytes()),
            (&few, false, scheme.mask_bytes()),
        ] {
            let mut out = Vec::new();
            write_groups(scheme, used, listed, &mut out);
            assert_eq!(out.len(), bytes, "{listed}");
            out.push(42);
            let mut input = out.as_slice();
            assert_eq!(&read_groups(scheme, listed, &mut input).unwrap(), used);
            assert_eq!(input, [42]);
            for cut in 0..out.len() - 1 {
                assert!(read_groups(scheme, listed, &mut &out[..cut]).is_err());
            }
        }
    }

    #[test]
    fn forged_group_sets_are_errors() {
        let scheme = Scheme::Switched;
        let mut more_than_there_are = Vec::new();
        varint::write_u64(&mut more_than_there_are, 2 * (scheme.groups() as u64 + 1));
        // A listed group past the last.
        let mut past_the_end = vec![2];
        varint::write_u64(&mut past_the_end, scheme.groups() as u64);
        // A form that is neither a list nor the mask.
        let unknown_form = [vec![3], vec![0; scheme.mask_bytes()]].concat();
        for forged in [more_than_there_are, past_the_end, unknown_form] {
            assert!(
                read_groups(scheme, true, &mut forged.as_slice()).is_err(),
                "{forged:?}"
            );
        }
    }
}
