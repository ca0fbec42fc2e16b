// Per-member vectors from files saved by torch.save (cli/Vectors.h).
#include "cli/Vectors.h"

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>
#include <nyto/checked_load.h>
#include <nyto/errors.h>

#include <sstream>

namespace nyto::cli {

std::vector<double> load_vector_file(const std::string& path) {
  c10::IValue v;
  try {
    v = load_pickle_checked(path, "not a readable file of torch.save");
  } catch (const IOError& e) {  // e.g. a state_dict: LibTorch's unpickler cannot read every pickle
    throw IOError(std::string(e.what()) +
                  "\nnote: nyto reads a 1-D tensor from a file of torch.save (a per-member "
                  "vector); a model is saved with torch.jit.save(torch.jit.script(model), path)");
  }
  const std::string want = "a per-member vector is a 1-D tensor of a floating or integer dtype, "
                           "saved by torch.save(torch.tensor([...]), path)";
  if (!v.isTensor())
    throw BindError("'" + path + "' holds a value of type " + v.type()->annotation_str() +
                    " saved by torch.save, not a tensor" +
                    (v.isGenericDict() ? " (a state_dict is not a model: save a model with "
                                         "torch.jit.save(torch.jit.script(model), path))"
                                       : "") +
                    "; " + want);
  at::Tensor t = v.toTensor();
  const at::ScalarType dtype = t.scalar_type();
  if (!at::isFloatingType(dtype) && !at::isIntegralType(dtype, /*includeBool=*/false))
    throw BindError("'" + path + "' holds a tensor of dtype " + c10::toString(dtype) + "; " + want);
  if (t.dim() != 1) {
    std::ostringstream shape;
    shape << t.sizes();  // [2, 3]
    throw BindError("'" + path + "' holds a tensor of shape " + shape.str() + "; " + want);
  }
  at::Tensor d = t.detach().to(at::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

}  // namespace nyto::cli
