//! CLIP's byte-level BPE tokenizer (openai/CLIP `simple_tokenizer.py`, Hugging Face
//! `CLIPTokenizer`), read from the `vocab.json` and `merges.txt` a Stable Diffusion folder ships
//! under `tokenizer/`. Prompts become the 77 ids the text encoder expects: start token, the BPE
//! tokens (truncated), end token, padding.
//!
//! Text is cleaned as the reference does without `ftfy`: runs of whitespace become one space,
//! the ends are trimmed, letters are lower-cased. `ftfy`'s mojibake repair and HTML unescaping are
//! not applied (they change nothing in ordinary prompts).

use super::error::{Result, SageError};
use regex::Regex;
use std::collections::HashMap;
use std::path::Path;

pub const START_TOKEN: &str = "<|startoftext|>";
pub const END_TOKEN: &str = "<|endoftext|>";
/// The text encoder's sequence length in every Stable Diffusion release.
pub const CONTEXT_LENGTH: usize = 77;
/// Marks the last symbol of a word in the vocabulary.
const WORD_END: &str = "</w>";
/// CLIP's pre-tokenisation: the special tokens, English contractions, letter runs, single digits,
/// runs of other non-space characters. Matched case-insensitively, as the reference does.
const PATTERN: &str =
    r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

pub struct ClipTokenizer {
    vocab: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
    pattern: Regex,
    start: u32,
    end: u32,
    pad: u32,
}

impl ClipTokenizer {
    /// Reads `dir/vocab.json` and `dir/merges.txt`. `pad_with` is the padding token (Stable
    /// Diffusion 1.x pads with the end token, 2.x with `!`); None pads with the end token.
    pub fn load(dir: &Path, pad_with: Option<&str>) -> Result<Self> {
        let vocab_path = dir.join("vocab.json");
        let merges_path = dir.join("merges.txt");
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| SageError::model(p, format!("cannot read the CLIP tokenizer file ({e})")))
        };
        let vocab: HashMap<String, u32> = serde_json::from_str(&read(&vocab_path)?).map_err(|e| {
            SageError::model(
                &vocab_path,
                format!("not a CLIP vocabulary (a JSON object of token → id): {e}"),
            )
        })?;
        Self::from_parts(vocab, &read(&merges_path)?, pad_with).map_err(|problem| SageError::model(dir, problem))
    }

    /// From a vocabulary and the text of a merges file (an optional `#version` line, then one
    /// `left right` pair per line, best first).
    pub fn from_parts(
        vocab: HashMap<String, u32>,
        merges: &str,
        pad_with: Option<&str>,
    ) -> std::result::Result<Self, String> {
        let id = |token: &str| {
            vocab
                .get(token)
                .copied()
                .ok_or_else(|| format!("the vocabulary has no {token:?} token"))
        };
        let (start, end) = (id(START_TOKEN)?, id(END_TOKEN)?);
        let pad = match pad_with {
            Some(t) => id(t)?,
            None => end,
        };
        let byte_chars = byte_to_unicode();
        // Every byte must have a token, or some prompt would have no ids.
        if let Some(c) = byte_chars.iter().find(|c| !vocab.contains_key(&c.to_string())) {
            return Err(format!("the vocabulary has no token for the byte symbol {c:?}"));
        }
        let mut ranks = HashMap::new();
        for (line_no, line) in merges.lines().enumerate() {
            if (line_no == 0 && line.starts_with("#version")) || line.trim().is_empty() {
                continue;
            }
            let mut parts = line.split(' ');
            let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("merges line {} is not a pair: {line:?}", line_no + 1));
            };
            // A merge whose result the vocabulary lacks could only produce an unknown token;
            // the reference's files never have one (its slice keeps exactly the vocabulary's).
            if vocab.contains_key(&format!("{a}{b}")) {
                let rank = ranks.len();
                ranks.entry((a.to_string(), b.to_string())).or_insert(rank);
            }
        }
        Ok(Self {
            vocab,
            ranks,
            byte_chars,
            pattern: Regex::new(PATTERN).map_err(|e| e.to_string())?,
            start,
            end,
            pad,
        })
    }

    /// The BPE tokens of `text` (no start, end or padding).
    pub fn tokens(&self, text: &str) -> Vec<String> {
        let cleaned = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        let mut out = Vec::new();
        for m in self.pattern.find_iter(&cleaned) {
            let piece = m.as_str();
            if piece == START_TOKEN || piece == END_TOKEN {
                out.push(piece.to_string());
                continue;
            }
            let symbols: String = piece.bytes().map(|b| self.byte_chars[b as usize]).collect();
            out.extend(self.bpe(&symbols));
        }
        out
    }

    /// `CONTEXT_LENGTH` ids: start, the tokens (at most 75), end, padding.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(CONTEXT_LENGTH);
        ids.push(self.start);
        ids.extend(
            self.tokens(text)
                .iter()
                .map(|t| self.vocab.get(t).copied().unwrap_or(self.end))
                .take(CONTEXT_LENGTH - 2),
        );
        ids.push(self.end);
        ids.resize(CONTEXT_LENGTH, self.pad);
        ids
    }

    /// Byte-pair merging of one word (already mapped to byte symbols): the best-ranked adjacent
    /// pair is merged everywhere, until no adjacent pair has a rank.
    fn bpe(&self, word: &str) -> Vec<String> {
        let mut chars: Vec<String> = word.chars().map(String::from).collect();
        if let Some(last) = chars.last_mut() {
            last.push_str(WORD_END);
        }
        loop {
            let best = chars
                .windows(2)
                .filter_map(|w| self.ranks.get(&(w[0].clone(), w[1].clone())))
                .min()
                .copied();
            let Some(best) = best else { break };
            let mut merged = Vec::with_capacity(chars.len());
            let mut i = 0;
            while i < chars.len() {
                if i + 1 < chars.len() && self.ranks.get(&(chars[i].clone(), chars[i + 1].clone())) == Some(&best) {
                    merged.push(format!("{}{}", chars[i], chars[i + 1]));
                    i += 2;
                } else {
                    merged.push(chars[i].clone());
                    i += 1;
                }
            }
            chars = merged;
        }
        chars
    }
}

/// GPT-2's reversible map of bytes to printable characters: printable Latin-1 bytes map to
/// themselves, the rest to U+0100 onwards in byte order.
fn byte_to_unicode() -> [char; 256] {
    let printable = |b: u32| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    let mut out = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        out[b as usize] = if printable(b) {
            char::from_u32(b).unwrap_or('\0')
        } else {
            let c = char::from_u32(next).unwrap_or('\0');
            next += 1;
            c
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vocabulary of the byte symbols (bare and word-final), the given merges and the specials.
    fn tiny(merges: &[&str]) -> ClipTokenizer {
        let bytes = byte_to_unicode();
        let mut tokens: Vec<String> = bytes.iter().map(|c| c.to_string()).collect();
        tokens.extend(bytes.iter().map(|c| format!("{c}{WORD_END}")));
        tokens.extend(merges.iter().map(|m| m.replace(' ', "")));
        tokens.push(START_TOKEN.into());
        tokens.push(END_TOKEN.into());
        let vocab = tokens.into_iter().enumerate().map(|(i, t)| (t, i as u32)).collect();
        ClipTokenizer::from_parts(vocab, &format!("#version: 0.2\n{}", merges.join("\n")), None).unwrap()
    }

    #[test]
    fn bytes_map_like_gpt2() {
        let m = byte_to_unicode();
        assert_eq!(m[b'a' as usize], 'a');
        assert_eq!(m[b' ' as usize], 'Ġ');
        assert_eq!(m[0], 'Ā');
        assert_eq!(m[0xAD], 'Ń');
    }

    #[test]
    fn merges_apply_by_rank_and_words_end_with_a_marker() {
        let tok = tiny(&["t h", "th e</w>", "c a", "ca t</w>"]);
        assert_eq!(tok.tokens("The  CAT"), ["the</w>", "cat</w>"]);
        // "ca" merges but "cats" has no "cat" + "s</w>" merge.
        assert_eq!(tok.tokens("cats"), ["ca", "t", "s</w>"]);
        // "'s" and each digit are words of their own; no merge joins "'" and "s".
        assert_eq!(
            tok.tokens("it's 42!"),
            ["i", "t</w>", "'", "s</w>", "4</w>", "2</w>", "!</w>"]
        );
    }

    #[test]
    fn encoding_is_start_tokens_end_and_padding_to_77() {
        let tok = tiny(&["c a", "ca t</w>"]);
        let ids = tok.encode("cat");
        assert_eq!(ids.len(), CONTEXT_LENGTH);
        assert_eq!(ids[0], tok.start);
        assert_eq!(ids[1], tok.vocab["cat</w>"]);
        assert_eq!(ids[2], tok.end);
        assert!(ids[3..].iter().all(|&i| i == tok.pad));
        // A long prompt keeps 75 tokens and still ends with the end token.
        let long = tok.encode(&"a ".repeat(200));
        assert_eq!(long.len(), CONTEXT_LENGTH);
        assert_eq!(long[CONTEXT_LENGTH - 1], tok.end);
    }

    #[test]
    fn a_vocabulary_without_the_specials_is_refused_by_name() {
        let vocab: HashMap<String, u32> = [("a".to_string(), 0)].into_iter().collect();
        let err = ClipTokenizer::from_parts(vocab, "", None).err().unwrap();
        assert!(err.contains("<|startoftext|>"), "{err}");
    }
}
