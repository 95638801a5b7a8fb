// The config library (csrc/config): presets, overrides, errors that name the
// key and the value, the stage switch, the geometry rules shared with the op,
// and the round-trip property parse_toml(to_toml(c)) == c over random
// configs (TESTING.md item 16, config half; the fuzz target is
// tests/fuzz/config_fuzz.cpp). Links no torch (ctest config_links_no_torch).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "config/config.h"

namespace lighthouse::config {
namespace {

// The message of the ConfigError `fn` throws ("" if none).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR_HAS(expr, needle)                                      \
  do {                                                                      \
    const std::string msg_ = error_of([&] { (void)(expr); });               \
    EXPECT_NE(msg_.find(needle), std::string::npos) << "message: " << msg_; \
  } while (0)

TEST(Config, PresetsParseAndValidate) {
  const auto names = preset_names();
  for (const char* want : {"tiny", "gpu-small", "paper-530m"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const Config c = load_preset(name);
    EXPECT_NO_THROW(validate(c));
    EXPECT_EQ(parse_toml(to_toml(c), "round-trip"), c);
  }
}

TEST(Config, Paper530mIsThePaperModel) {
  const Config c = load_preset("paper-530m");
  EXPECT_EQ(c.model.d_model, 1024);
  EXPECT_EQ(c.model.layers, 30);
  EXPECT_EQ(c.model.heads, 8);
  EXPECT_EQ(head_dim(c.model), 128);
  EXPECT_EQ(c.model.ffn_hidden, 1536);
  EXPECT_EQ(c.train.seq_len, 98304);
  EXPECT_EQ(c.lighthouse.levels, 3);
  EXPECT_EQ(c.lighthouse.pool, 4);
  EXPECT_EQ(c.lighthouse.top_k, 1536);
  EXPECT_EQ(c.lighthouse.scorer, "norm");
  EXPECT_EQ(resolved_dense_layers(c.model), (std::vector<int64_t>{0, 1, 28, 29}));
  EXPECT_DOUBLE_EQ(c.optim.lr, 2e-3);
  EXPECT_DOUBLE_EQ(c.optim.beta1, 0.9);
  EXPECT_DOUBLE_EQ(c.optim.beta2, 0.95);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 0.1);
  EXPECT_EQ(c.optim.warmup_steps, 2000);
  EXPECT_DOUBLE_EQ(c.optim.grad_clip, 1.0);
  EXPECT_EQ(c.train.precision, "bf16");
}

TEST(Config, TinyFitsItsGeometryAndHasLighthouseLayers) {
  const Config c = load_preset("tiny");
  EXPECT_TRUE(uses_lighthouse(c));
  EXPECT_GE(c.train.seq_len, min_seq_len(c.lighthouse));
  EXPECT_GT(switch_step(c), 0);
  EXPECT_TRUE(c.train.baseline);
}

TEST(Config, Overrides) {
  Config c = load_preset("tiny");
  apply_override(c, "model.layers", "6");
  apply_override(c, "optim.lr", "1e-3");
  apply_override(c, "optim.weight_decay", "0");  // an integer for a float key
  apply_override(c, "train.deterministic", "true");
  apply_override(c, "model.dense_layers", "0, 1,-1");
  apply_override(c, "lighthouse.scorer", "dilated");
  EXPECT_EQ(c.model.layers, 6);
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 0.0);
  EXPECT_TRUE(c.train.deterministic);
  EXPECT_EQ(c.model.dense_layers, (std::vector<int64_t>{0, 1, -1}));
  EXPECT_EQ(resolved_dense_layers(c.model), (std::vector<int64_t>{0, 1, 5}));
  EXPECT_EQ(c.lighthouse.scorer, "dilated");
  apply_override(c, "model.dense_layers", "[2, 3]");
  EXPECT_EQ(c.model.dense_layers, (std::vector<int64_t>{2, 3}));
  apply_override(c, "model.dense_layers", "");
  EXPECT_TRUE(c.model.dense_layers.empty());
}

TEST(Config, OverrideErrorsNameTheKey) {
  Config c;
  EXPECT_ERROR_HAS(apply_override(c, "model.layerz", "4"), "unknown key 'model.layerz'");
  EXPECT_ERROR_HAS(apply_override(c, "model.layerz", "4"), "d_model");  // lists the valid keys
  EXPECT_ERROR_HAS(apply_override(c, "modle.layers", "4"), "unknown section [modle]");
  EXPECT_ERROR_HAS(apply_override(c, "layers", "4"), "--section.key");
  EXPECT_ERROR_HAS(apply_override(c, "model.layers", "four"), "--model.layers: 'four' is not an integer");
  EXPECT_ERROR_HAS(apply_override(c, "model.layers", "4.5"), "not an integer");
  EXPECT_ERROR_HAS(apply_override(c, "model.layers", "99999999999999999999"), "not an integer");
  EXPECT_ERROR_HAS(apply_override(c, "optim.lr", "fast"), "not a float");
  EXPECT_ERROR_HAS(apply_override(c, "train.baseline", "yes"), "not a bool");
  EXPECT_ERROR_HAS(apply_override(c, "model.dense_layers", "0,x"), "integer list");
}

TEST(Config, TomlErrors) {
  EXPECT_ERROR_HAS(parse_toml("[model]\nlayers = \"four\"\n", "f.toml"),
                   "f.toml:2: 'model.layers' must be an integer, got a TOML string");
  EXPECT_ERROR_HAS(parse_toml("[model]\nwidth = 3\n", "f.toml"), "unknown key 'model.width'");
  EXPECT_ERROR_HAS(parse_toml("[optimizer]\nlr = 3\n", "f.toml"), "unknown section [optimizer]");
  EXPECT_ERROR_HAS(parse_toml("[optimizer]\n", "f.toml"), "unknown section [optimizer]");
  EXPECT_ERROR_HAS(parse_toml("lr = 3\n", "f.toml"), "must be a [section] table");
  EXPECT_ERROR_HAS(parse_toml("[model\n", "f.toml"), "f.toml:1:");
  EXPECT_ERROR_HAS(parse_toml("[model]\ndense_layers = [0, 1.5]\n", "f.toml"), "integer list");
  EXPECT_ERROR_HAS(parse_toml("[optim]\nlr = true\n", "f.toml"), "'optim.lr' must be a float");
  // Non-ASCII outside \u escapes is refused (toml++ 3.3 has undefined
  // behaviour on some of it); escapes give any character.
  EXPECT_ERROR_HAS(parse_toml("[train]\nrun_dir = \"r\xc3\xa9\"\n", "f.toml"), "f.toml:2:13: non-ASCII byte 0xC3");
  EXPECT_ERROR_HAS(parse_toml("s\xc7\xa2 ", "f.toml"), "non-ASCII");  // the fuzzer's input
  EXPECT_EQ(parse_toml("[train]\nrun_dir = \"r\\u00e9\"\n", "f.toml").train.run_dir, "r\xc3\xa9");
  // A float key takes an integer.
  EXPECT_DOUBLE_EQ(parse_toml("[model]\nrope_theta = 500000\n", "f.toml").model.rope_theta, 500000.0);
}

TEST(Config, ValidationSaysWhatToChange) {
  Config c = load_preset("tiny");
  c.train.seq_len = 256;  // L=3, p=2, top_k=128 needs 512
  EXPECT_ERROR_HAS(validate(c), "Raise train.seq_len to >= 512");
  // The same context is fine when no layer runs Lighthouse.
  c.model.attention = "dense";
  EXPECT_NO_THROW(validate(c));

  c = load_preset("tiny");
  c.model.kv_heads = 3;
  EXPECT_ERROR_HAS(validate(c), "model.kv_heads (3) must divide model.heads (4)");
  c = load_preset("tiny");
  c.model.heads = 3;
  c.model.kv_heads = 1;
  EXPECT_ERROR_HAS(validate(c), "model.heads (3) does not divide model.d_model (128)");
  c = load_preset("tiny");
  c.model.vocab_size = 256;
  EXPECT_ERROR_HAS(validate(c), "model.vocab_size must hold the 259");
  c = load_preset("tiny");
  c.lighthouse.top_k = 100;
  EXPECT_ERROR_HAS(validate(c), "lighthouse.top_k must be a positive multiple of 128, got 100");
  c = load_preset("tiny");
  c.lighthouse.pool = 3;
  EXPECT_ERROR_HAS(validate(c), "lighthouse.pool must be a power of two >= 2, got 3");
  c = load_preset("tiny");
  c.model.dense_layers = {0, 9};
  EXPECT_ERROR_HAS(validate(c), "layer 9 does not exist in a 4-layer model");
  c = load_preset("tiny");
  c.stage2.start_step = c.train.steps;
  EXPECT_ERROR_HAS(validate(c), "stage2.start_step must be 0 (no switch) or below train.steps");
  c = load_preset("tiny");
  c.train.device = "tpu";
  EXPECT_ERROR_HAS(validate(c), "train.device must be auto, cpu, cuda or cuda:N");
  c = load_preset("tiny");
  c.optim.lr = std::nan("");
  EXPECT_ERROR_HAS(validate(c), "optim.lr must be in (0, 10)");
  // Several problems are reported together.
  c = load_preset("tiny");
  c.train.batch = 0;
  c.optim.beta2 = 1.0;
  const std::string msg = error_of([&] { validate(c); });
  EXPECT_NE(msg.find("train.batch"), std::string::npos) << msg;
  EXPECT_NE(msg.find("optim.beta2"), std::string::npos) << msg;
}

// Bug 4 of issue 8: `lighthouse train --preset tiny --steps 2` was refused
// ("stage2.start_step must be 0 (no switch) or below train.steps (2), got 90").
// The presets give the switch as a fraction of the run, so --steps keeps it.
TEST(Config, ShortRunOfAPresetKeepsItsSwitchFraction) {
  Config tiny = load_preset("tiny");
  apply_override(tiny, "train.steps", "2");
  EXPECT_NO_THROW(validate(tiny));
  EXPECT_EQ(switch_step(tiny), 1);  // 0.75 of 2 steps = 1.5, a half rounded down
  for (const auto& name : preset_names()) {
    SCOPED_TRACE(name);
    Config c = load_preset(name);
    apply_override(c, "train.steps", "4");
    EXPECT_NO_THROW(validate(c));
    EXPECT_EQ(switch_step(c), 3);  // 0.75 or 0.8 of 4 steps: 3 or 3.2
  }
  // The presets' own runs switch where they did when they named the step.
  EXPECT_EQ(switch_step(load_preset("tiny")), 90);
  EXPECT_EQ(switch_step(load_preset("gpu-small")), 320);
  EXPECT_EQ(switch_step(load_preset("paper-530m")), 12000);
}

TEST(Config, SwitchStepRoundsToTheNearestStepWithHalvesDown) {
  Config c;
  EXPECT_EQ(switch_step(c), 0);  // neither key set: no switch
  c.stage2.start_fraction = 0.625;
  c.train.steps = 16000;
  EXPECT_EQ(switch_step(c), 10000);  // the paper's 10k of 16k
  c.train.steps = 7;                 // 4.375
  EXPECT_EQ(switch_step(c), 4);
  c.train.steps = 5;  // 3.125
  EXPECT_EQ(switch_step(c), 3);
  c.stage2.start_fraction = 0.3;
  c.train.steps = 3;  // 0.9
  EXPECT_EQ(switch_step(c), 1);
  c.stage2.start_fraction = 0.5;
  c.train.steps = 5;  // 2.5: half down
  EXPECT_EQ(switch_step(c), 2);
  c.train.steps = 7;  // 3.5
  EXPECT_EQ(switch_step(c), 3);
  c.stage2.start_fraction = 0.29;
  c.train.steps = 100;  // 28.999999999999996 in double arithmetic
  EXPECT_EQ(switch_step(c), 29);
}

TEST(Config, ExplicitSwitchStepWinsOverTheFraction) {
  Config c = load_preset("tiny");
  apply_override(c, "stage2.start_step", "7");
  EXPECT_EQ(switch_step(c), 7);
  EXPECT_NO_THROW(validate(c));
  apply_override(c, "stage2.start_step", "0");  // no switch, whatever the fraction
  EXPECT_EQ(switch_step(c), 0);
  EXPECT_NO_THROW(validate(c));
  apply_override(c, "stage2.start_step", "-1");  // back to the fraction
  EXPECT_EQ(switch_step(c), 90);
  apply_override(c, "stage2.start_fraction", "0");
  EXPECT_EQ(switch_step(c), 0);
  EXPECT_NO_THROW(validate(c));
}

TEST(Config, SwitchFractionErrorsNameBothValues) {
  Config c = load_preset("tiny");
  c.train.steps = 1;  // 0.75 of 1 step: the switch after step 1 = the end
  std::string msg = error_of([&] { validate(c); });
  EXPECT_NE(msg.find("stage2.start_fraction (0.75) of train.steps (1) puts the switch after step 1"), std::string::npos)
      << msg;
  c = load_preset("tiny");
  c.stage2.start_fraction = 0.01;  // 1.2 of 120 steps -> 1: fine
  EXPECT_NO_THROW(validate(c));
  c.stage2.start_fraction = 0.004;  // 0.48 of 120 steps -> 0: no Stage 1
  msg = error_of([&] { validate(c); });
  EXPECT_NE(msg.find("stage2.start_fraction (0.004) of train.steps (120) puts the switch after step 0"),
            std::string::npos)
      << msg;
  c = load_preset("tiny");
  c.stage2.start_fraction = 1.0;
  EXPECT_ERROR_HAS(validate(c), "stage2.start_fraction must be in [0, 1) (0: unused), got 1");
  c.stage2.start_fraction = -0.5;
  EXPECT_ERROR_HAS(validate(c), "stage2.start_fraction must be in [0, 1) (0: unused), got -0.5");
  c.stage2.start_fraction = std::nan("");
  EXPECT_ERROR_HAS(validate(c), "stage2.start_fraction must be in [0, 1)");
  c = load_preset("tiny");
  c.stage2.start_step = -2;
  EXPECT_ERROR_HAS(validate(c), "got -2 (-1: the switch at stage2.start_fraction)");
}

// The op checks N_pad % dilation for the dilated scorer; the validator must
// too, or a config passes and its run fails on the first step (issue 8).
TEST(Config, DilatedScorerNeedsAContextItsDilationDivides) {
  Config c = load_preset("tiny");  // L=3, p=2, top_k=128: N pads to a multiple of 4
  c.lighthouse.scorer = "dilated";
  c.lighthouse.dilation = 8;
  c.train.seq_len = 4100;  // pads to itself, 4 * 1025: not a multiple of 8
  EXPECT_ERROR_HAS(validate(c), "lighthouse.dilation=8 must divide the padded sequence length 4100");
  EXPECT_ERROR_HAS(validate(c), "Lower lighthouse.dilation to <= 4, or change train.seq_len");
  c.train.seq_len = 4102;  // pads to 4104 = 8 * 513
  EXPECT_NO_THROW(validate(c));
  c.train.seq_len = 4100;
  c.lighthouse.dilation = 4;
  EXPECT_NO_THROW(validate(c));
  c.lighthouse.dilation = 8;
  c.model.attention = "dense";  // no Lighthouse layer: any context
  EXPECT_NO_THROW(validate(c));
  c.model.attention = "lighthouse";
  c.lighthouse.scorer = "norm";  // the norm scorer ignores the dilation
  EXPECT_NO_THROW(validate(c));
  c.lighthouse.scorer = "dilated";
  c.lighthouse.dilation = 6;
  EXPECT_ERROR_HAS(validate(c), "lighthouse.dilation must be a power of two >= 1, got 6");
}

// The op's own limits, under the config's key names.
TEST(Config, GeometryRulesAreTheOps) {
  Config c = load_preset("tiny");
  c.lighthouse.levels = 17;
  EXPECT_ERROR_HAS(validate(c), "lighthouse.levels must be <= 16, got 17");
  c = load_preset("tiny");
  c.lighthouse.levels = 1;
  EXPECT_ERROR_HAS(validate(c), "lighthouse.levels must be >= 2, got 1");
  c = load_preset("tiny");
  c.lighthouse.pool = 1 << 20;
  EXPECT_ERROR_HAS(validate(c), "lighthouse.top_k * lighthouse.pool^(lighthouse.levels-1) = 128 * 1048576^2 exceeds 2^40");
  c = load_preset("tiny");
  c.train.seq_len = int64_t{3} << 30;  // the pyramid would have more than 2^31 entries per row
  EXPECT_ERROR_HAS(validate(c), "sequence length train.seq_len=3221225472 is too long");
}

// Paths must be strictly valid UTF-8 (one decoder, io/utf8.h): an overlong
// encoding of NUL is refused, as a real character is accepted.
TEST(Config, PathsMustBeValidUtf8) {
  Config c = load_preset("tiny");
  c.train.run_dir = "runs/\xc0\x80";
  EXPECT_ERROR_HAS(validate(c), "paths must be valid UTF-8");
  c.train.run_dir = "runs/\xed\xa0\x80";  // a UTF-16 surrogate
  EXPECT_ERROR_HAS(validate(c), "paths must be valid UTF-8");
  c.train.run_dir = "runs/caf\xc3\xa9";
  EXPECT_NO_THROW(validate(c));
  EXPECT_EQ(parse_toml(to_toml(c), "round-trip").train.run_dir, c.train.run_dir);
}

TEST(Config, MinSeqLenIsTheSpecFormula) {
  for (int64_t L : {2, 3, 4}) {
    for (int64_t p : {2, 4, 8}) {
      for (int64_t k : {128, 1536}) {
        LighthouseConfig l;
        l.levels = L;
        l.pool = p;
        l.top_k = k;
        EXPECT_EQ(min_seq_len(l), k * static_cast<int64_t>(std::pow(p, L - 1)));
      }
    }
  }
}

// Random valid-looking configs for the round-trip property.
std::string random_string(std::mt19937_64& rng) {
  static const char* const pieces[] = {"a", "Z", "0", "/", " ", "\"", "\\",   "\n",   "\t",  "#",   "=",
                                       "[", "]", "é", "ß", "→", "😀",  "\x01", "\x7f", "'''", "${x}"};
  std::string s;
  const int n = static_cast<int>(rng() % 12);
  for (int i = 0; i < n; ++i) s += pieces[rng() % (sizeof pieces / sizeof pieces[0])];
  return s;
}

double random_double(std::mt19937_64& rng) {
  switch (rng() % 4) {
    case 0:
      return static_cast<double>(static_cast<int64_t>(rng() % 2000001) - 1000000);
    case 1:
      return std::ldexp(static_cast<double>(rng() % (uint64_t{1} << 53)), static_cast<int>(rng() % 200) - 150);
    case 2:
      return -std::ldexp(static_cast<double>(rng() % (uint64_t{1} << 53)), static_cast<int>(rng() % 60) - 30);
    default: {
      // Any finite bit pattern.
      double d;
      do {
        const uint64_t bits = rng();
        std::memcpy(&d, &bits, sizeof d);
      } while (!std::isfinite(d));
      return d;
    }
  }
}

int64_t random_int(std::mt19937_64& rng) {
  switch (rng() % 3) {
    case 0:
      return static_cast<int64_t>(rng() % 100);
    case 1:
      return static_cast<int64_t>(rng());  // any 64-bit value, negative too
    default:
      return -static_cast<int64_t>(rng() % 1000);
  }
}

TEST(Config, RoundTripProperty) {
  std::mt19937_64 rng(20261122);
  for (int trial = 0; trial < 500; ++trial) {
    Config c;
    c.model.d_model = random_int(rng);
    c.model.layers = random_int(rng);
    c.model.heads = random_int(rng);
    c.model.kv_heads = random_int(rng);
    c.model.head_dim = random_int(rng);
    c.model.ffn_hidden = random_int(rng);
    c.model.vocab_size = random_int(rng);
    c.model.rope_theta = random_double(rng);
    c.model.norm_eps = random_double(rng);
    c.model.init_std = random_double(rng);
    c.model.attention = random_string(rng);
    c.model.dense_layers.clear();
    for (int i = static_cast<int>(rng() % 6); i > 0; --i) c.model.dense_layers.push_back(random_int(rng));
    c.lighthouse.levels = random_int(rng);
    c.lighthouse.pool = random_int(rng);
    c.lighthouse.top_k = random_int(rng);
    c.lighthouse.scorer = random_string(rng);
    c.lighthouse.backend = random_string(rng);
    c.train.seq_len = random_int(rng);
    c.train.steps = random_int(rng);
    c.train.activation_checkpointing = rng() % 2;
    c.train.deterministic = rng() % 2;
    c.train.baseline = rng() % 2;
    c.train.max_seconds = random_double(rng);
    c.train.run_dir = random_string(rng);
    c.optim.lr = random_double(rng);
    c.optim.beta2 = random_double(rng);
    c.optim.schedule = random_string(rng);
    c.stage2.start_step = random_int(rng);
    c.stage2.start_fraction = random_double(rng);
    c.data.corpus = random_string(rng);
    c.checkpoint.keep = random_int(rng);
    c.eval.batches = random_int(rng);
    const std::string text = to_toml(c);
    Config back;
    ASSERT_NO_THROW(back = parse_toml(text, "round-trip")) << text;
    ASSERT_EQ(back, c) << text;
    // Idempotent output too.
    ASSERT_EQ(to_toml(back), text);
  }
}

TEST(Config, EqualityIsFieldByField) {
  Config a, b;
  EXPECT_EQ(a, b);
  b.optim.lr = std::nextafter(a.optim.lr, 1.0);
  EXPECT_NE(a, b);
  b = a;
  b.model.dense_layers.push_back(3);
  EXPECT_NE(a, b);
}

TEST(Config, DescribeKeysListsEveryKey) {
  const std::string d = describe_keys(Config{});
  for (const char* key : {"--model.d_model", "--lighthouse.top_k", "--train.seq_len", "--optim.lr",
                          "--stage2.start_step", "--stage2.start_fraction", "--checkpoint.keep", "--eval.every", "--log.every"}) {
    EXPECT_NE(d.find(key), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace lighthouse::config
