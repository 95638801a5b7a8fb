/*
 * Named corpora made of Debian packages, and packing them (torch-free).
 *
 * Where the text comes from: each package's .deb unpacked with `dpkg-deb -x`
 * into its own directory <root>/<package>/ (its files and nothing else; no
 * maintainer scripts, no dependencies, no root rights), listed in
 * <root>/packages.txt as "<package> <version>" lines. `LIGHTHOUSE_LARGE_CORPUS=1
 * bash scripts/setup.sh` does this into data/debian (the default root;
 * $LIGHTHOUSE_DEBIAN_ROOT or --root override it).
 *
 * A corpus is a list of sources; a source takes from one package either
 *   - files: regular files under <root>/<package>/ whose path relative to it
 *     matches one of `include` and none of `exclude`, read decompressed
 *     when they are gzip or xz files (archive.h), or
 *   - archive members: the regular members of the tar archive `archive`
 *     (a path under <root>/<package>/, e.g. the kernel's .tar.xz), matched
 *     by member name, streamed (never unpacked to disk).
 * Patterns are fnmatch(3) globs in which '*' also matches '/'. A file or
 * member goes to the first source of its package that matches it. Symbolic
 * links and other non-regular entries are never followed; they are counted.
 *
 * pack_corpus(): deterministic given the unpacked files and the options.
 *  1. Read every matching file and member; skip (count and list) empty and
 *     binary ones (classify_text) and exact duplicates: the sha256 of the
 *     text, first copy kept in (source order, then name order); a later copy
 *     is skipped as "duplicate of <name>". Near-duplicates are kept.
 *  2. A document longer than its source's chunk_bytes is cut into pieces of
 *     at most chunk_bytes at the last blank line before the limit (else the
 *     last line end, else a character boundary): documents "<name>#<k>".
 *  3. Per source, documents in a seeded order are taken until the source's
 *     bytes reach max_bytes (whole documents, the last may overshoot; 0: all).
 *  4. All taken documents are shuffled with the seed; the first go to val
 *     until val holds val_fraction of the taken bytes, the rest are train in
 *     that order, up to max_train_tokens (whole documents, the last may
 *     overshoot; 0: all). So val does not depend on max_train_tokens, and a
 *     capped pack's train documents are the first train documents of the
 *     uncapped pack: `--max-train-tokens` makes a smaller valid dataset with
 *     the same validation split and its own dataset id.
 *  5. With recall_share > 0, synthetic retrieval documents (recall_mix.h)
 *     of recall_share times the train tokens are inserted into the train
 *     order at seeded positions (source "recall-mix", kind "synthetic").
 * The text is spooled to "<out>.partial/spool.tmp" while reading (the
 * kernel alone is 1.3 GB), not held in memory. Output: pack.h's format plus
 * documents.tsv (one line per file/member/piece: split, source, bytes,
 * sha256, name, reason) and a "corpus" section in manifest.json (per source:
 * package, version, licence, counts, tokens per split).
 */
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/pack.h"

namespace lighthouse::data {

struct CorpusSource {
  std::string name;      // "kernel-code"
  std::string package;   // Debian package, e.g. "linux-source-6.1"
  std::string kind;      // "code" or "prose" (reported)
  std::string licence;   // short form, from /usr/share/doc/<package>/copyright
  std::string archive;   // tar archive under the package directory; "" for a file source
  std::vector<std::string> include;  // globs on relative paths (files) or member names (archive)
  std::vector<std::string> exclude;
  uint64_t max_bytes = 0;    // cap on the source's document bytes; 0: all
  uint64_t chunk_bytes = 0;  // cut longer documents into pieces; 0: never
};

struct Corpus {
  std::string name, description;
  double val_fraction = 0.005;
  std::vector<CorpusSource> sources;
  std::vector<std::string> packages() const;  // distinct, in source order
};

// The built-in corpora ("large"); the default small corpus (linux-doc) is
// packed by pack() from default_corpus_dir(), not described here.
const std::vector<Corpus>& named_corpora();
const Corpus& find_corpus(const std::string& name);  // throws naming the known corpora

// $LIGHTHOUSE_DEBIAN_ROOT if set, else "data/debian".
std::string default_debian_root();
// "<package> <version>" lines of <root>/packages.txt (absent file: empty).
std::vector<std::pair<std::string, std::string>> unpacked_packages(const std::string& root);
// The corpus's packages not listed in <root>/packages.txt.
std::vector<std::string> missing_packages(const Corpus& corpus, const std::string& root);
// What to run to get them (the setup.sh line and the apt-get / dpkg-deb commands).
std::string install_hint(const Corpus& corpus, const std::vector<std::string>& missing, const std::string& root);

struct CorpusProgress {
  std::string source;
  int64_t files = 0;   // files/members read so far (all sources)
  uint64_t bytes = 0;  // their bytes (decompressed)
};

struct CorpusPackOptions {
  Corpus corpus;
  std::string root;     // default_debian_root() if empty
  std::string out_dir;
  uint64_t seed = 0;
  uint64_t max_train_tokens = 0;  // 0: all
  uint64_t shard_bytes = 16u << 20;
  // Synthetic retrieval documents (recall_mix.h) added to train: this share
  // of the real train tokens (e.g. 0.01), each document inserted at a seeded
  // position of the train order; val stays natural text. 0: none.
  double recall_share = 0;
  int64_t recall_min_bytes = 1024, recall_max_bytes = 32768;
  std::function<void(const CorpusProgress&)> progress;  // optional, after each file/member
};

struct SourceSummary {
  std::string name, package, version, kind, licence;
  int64_t files = 0;       // files/members matched
  int64_t skipped = 0;     // empty or binary
  int64_t duplicates = 0;  // identical to an earlier file
  int64_t documents = 0;   // documents (pieces) of its text
  uint64_t text_bytes = 0;          // bytes of those documents
  int64_t unused_documents = 0;     // left out by max_bytes or max_train_tokens
  int64_t train_documents = 0, val_documents = 0;
  uint64_t train_tokens = 0, val_tokens = 0;
};

struct CorpusPackSummary {
  PackSummary pack;  // counts over all sources (files_unused: documents left out by the caps)
  std::vector<SourceSummary> sources;
  int64_t duplicates = 0;
  int64_t excluded_members = 0;  // archive members no source matched
  int64_t non_regular = 0;       // symbolic links etc., not read
};

CorpusPackSummary pack_corpus(const CorpusPackOptions& options);

}  // namespace lighthouse::data
