// first_patch.cc - the first predicted patch's exact statistics (see first_patch.h).
#include "first_patch.h"

#include <algorithm>

#ifdef TOTO_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "cuda/kernels.h"
#endif

namespace toto {

namespace {

std::vector<double> to_vector(const torch::Tensor &t) {
    auto c = t.contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

} // namespace

FirstPatches::FirstPatches(const HeadOut &head, const torch::Tensor &mean,
                           const torch::Tensor &scale,
                           const std::vector<const toto_request *> &reqs) {
    B_ = head.df.size(0);
    V_ = head.df.size(1);
    P_ = head.df.size(2);
    K_ = head.df.size(3);
    if (on_device(head, mean, scale, reqs))
        return;
    params_ = torch::stack({head.probs, head.df, head.loc, head.scale})
                  .to(torch::kCPU, torch::kFloat64)
                  .contiguous();
    stats_ = torch::stack({mean, scale}).to(torch::kCPU, torch::kFloat64).contiguous();
}

#ifdef TOTO_CUDA_KERNELS

namespace {

// Every level any request needs in its first patch: its quantiles and the median.
std::vector<double> levels_of(const std::vector<const toto_request *> &reqs) {
    std::vector<double> levels{0.5};
    for (const toto_request *r : reqs)
        levels.insert(levels.end(), r->quantile_levels, r->quantile_levels + r->n_quantiles);
    std::sort(levels.begin(), levels.end());
    levels.erase(std::unique(levels.begin(), levels.end()), levels.end());
    return levels;
}

} // namespace

// The mean and every needed quantile of every cell by toto_k_mixture_stats,
// then one copy to the host. False when the head is not on a GPU.
bool FirstPatches::on_device(const HeadOut &head, const torch::Tensor &mean,
                             const torch::Tensor &scale,
                             const std::vector<const toto_request *> &reqs) {
    if (!head.df.is_cuda())
        return false;
    const auto dtype = head.df.scalar_type();
    if (dtype != torch::kFloat32 && dtype != torch::kFloat64)
        return false;
    levels_ = levels_of(reqs);
    const int64_t Q = B_ * V_, L = int64_t(levels_.size());
    auto f64 = mean.options().dtype(torch::kFloat64);
    // Pinned and asynchronous both ways: nothing here waits for the context
    // pass; of() synchronizes once, usually after the caller's own copy did.
    levels_pinned_ = torch::empty({L}, torch::TensorOptions(torch::kFloat64).pinned_memory(true));
    std::copy(levels_.begin(), levels_.end(), levels_pinned_.data_ptr<double>());
    auto levels = levels_pinned_.to(mean.device(), /*non_blocking=*/true);
    auto out = torch::empty({(1 + L) * Q * P_}, f64);
    auto probs = head.probs.contiguous(), df = head.df.contiguous(), loc = head.loc.contiguous(),
         sc = head.scale.contiguous();
    auto shift = mean.to(torch::kFloat64).contiguous(), sd = scale.to(torch::kFloat64).contiguous();
    int rc = toto_k_mixture_stats(
        out.data_ptr<double>(), out.data_ptr<double>() + Q * P_, probs.data_ptr(), df.data_ptr(),
        loc.data_ptr(), sc.data_ptr(), dtype == torch::kFloat32 ? TOTO_K_F32 : TOTO_K_F64,
        shift.data_ptr<double>(), sd.data_ptr<double>(), levels.data_ptr<double>(), Q, P_, K_, L,
        c10::cuda::getCurrentCUDAStream().stream());
    if (rc != 0)
        throw Error(TOTO_EMODEL, std::string("mixture statistics: ") + toto_cuda_error_string(rc));
    exact_ = torch::empty(out.sizes(), levels_pinned_.options());
    exact_.copy_(out, /*non_blocking=*/true);
    pending_ = true;
    return true;
}

#else

bool FirstPatches::on_device(const HeadOut &, const torch::Tensor &, const torch::Tensor &,
                             const std::vector<const toto_request *> &) {
    return false;
}

#endif

void FirstPatches::wait() const {
#ifdef TOTO_CUDA_KERNELS
    if (pending_)
        c10::cuda::getCurrentCUDAStream().synchronize();
#endif
    pending_ = false;
}

FirstPatch FirstPatches::of(int64_t b) const {
    FirstPatch fp;
    fp.V = V_;
    fp.P = P_;
    fp.K = K_;
    if (exact_.defined()) {
        wait();
        const double *all = exact_.data_ptr<double>();
        const int64_t cells = B_ * V_ * P_;
        fp.pre_mean = all + b * V_ * P_;
        fp.pre_q = all + cells + b * V_ * P_;
        fp.pre_q_stride = cells;
        fp.pre_levels = &levels_;
        return fp;
    }
    fp.w = to_vector(params_[0][b]);
    fp.df = to_vector(params_[1][b]);
    fp.loc = to_vector(params_[2][b]);
    fp.scale = to_vector(params_[3][b]);
    fp.mean = to_vector(stats_[0].narrow(0, b * V_, V_));
    fp.sd = to_vector(stats_[1].narrow(0, b * V_, V_));
    return fp;
}

} // namespace toto
