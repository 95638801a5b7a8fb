// op_options (lighthouse_options.h).
#include "model/lighthouse_options.h"

namespace lighthouse::model {

lighthouse::Options op_options(const config::LighthouseConfig& l) {
  lighthouse::Options o;
  o.levels = l.levels;
  o.pool = l.pool;
  o.top_k = l.top_k;
  o.scorer = parse_scorer(l.scorer);
  o.dilation = l.dilation;
  o.backend = parse_backend(l.backend);
  return o;
}

}  // namespace lighthouse::model
