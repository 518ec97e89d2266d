"""FlatAdam against torch.optim.Adam: the same update, bit for bit."""

import torch

from superpos_core.adam import FlatAdam


def test_flat_adam_makes_torch_adams_updates_exactly():
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (4,), (2, 3, 5)]
    ours = [torch.randn(shape, generator=generator) for shape in shapes]
    theirs = [torch.nn.Parameter(t.clone()) for t in ours]
    adam = FlatAdam(ours)
    reference = torch.optim.Adam(theirs, lr=1.0)
    for step in range(50):
        lr = 0.05 * (1 - step / 50)  # a changing rate, as the trainers' schedules set it
        for group in reference.param_groups:
            group["lr"] = lr
        for grad, parameter in zip(adam.grads, theirs):
            grad.copy_(torch.randn(grad.shape, generator=generator))
            parameter.grad = grad.clone()
        adam.step(lr)
        reference.step()
    for mine, parameter in zip(ours, theirs):
        torch.testing.assert_close(mine, parameter.detach(), rtol=0, atol=0)
    moments = reference.state[theirs[0]]
    torch.testing.assert_close(adam.state[ours[0]]["exp_avg_sq"], moments["exp_avg_sq"], rtol=0, atol=0)


def test_the_parameters_are_views_of_the_buffer_until_released():
    W, b = torch.zeros(2, 3), torch.zeros(3)
    adam = FlatAdam([W, b])
    adam.flat.fill_(1.0)
    assert W.sum() == 6 and b.sum() == 3  # they are the buffer
    adam.release()
    adam.flat.fill_(2.0)
    assert W.sum() == 6 and W.untyped_storage().data_ptr() != b.untyped_storage().data_ptr()
