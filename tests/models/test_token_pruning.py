"""Token pruning: PPT (keypoint-attention top-k in TokenPose, DistilPose, SDPose) and EViTPose joint tokens."""

import math

import pytest
import torch

from slimpose.models import create_model
from slimpose.models.evitpose import EViTPoseBackbone, JointPruningBlock
from slimpose.models.transformer import PruningTokenBlock, TokenPruning, Tokens, TokenStack, set_keep_ratio
from slimpose.models.transformer.pruning import (
    num_kept, prefix_attention_scores, pruning_layers, select_visual, split_visual, visual_at,
)
from slimpose.models.vitpose import ViTPoseBackbone

INPUT = (48, 64)  # (w, h): a 16x12 feature map, 4x3 patches -> 4x4 = 16 visual tokens
SMALL = dict(input_size=INPUT, stem_blocks=1, dim=32, num_heads=2)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def test_scores_and_selection_on_a_hand_made_attention_map():
    # 2 keypoint tokens, 5 visual tokens, 2 heads: the scores are the head-mean of the keypoint rows, summed
    p, n = 2, 5
    attn = torch.zeros(1, 2, p + n, p + n)
    attn[0, 0, 0, p:] = torch.tensor([0.1, 0.5, 0.0, 0.3, 0.1])
    attn[0, 1, 0, p:] = torch.tensor([0.1, 0.1, 0.0, 0.3, 0.1])
    attn[0, 0, 1, p:] = torch.tensor([0.0, 0.0, 0.4, 0.0, 0.0])
    attn[0, 1, 1, p:] = torch.tensor([0.0, 0.0, 0.4, 0.2, 0.0])
    attn[0, :, p:, p:] = 1.0  # visual -> visual attention must not count
    scores = prefix_attention_scores(attn, p)
    torch.testing.assert_close(scores, torch.tensor([[0.1, 0.3, 0.4, 0.4, 0.1]]))
    keep = select_visual(scores + torch.tensor([[0, 0, 0, 1e-3, 0]]), 0.5)  # ceil(2.5) = 3
    assert keep.shape == (1, 3) and keep[0].tolist() == [3, 2, 1]
    kept, dropped = split_visual(scores + torch.tensor([[0, 0, 0, 1e-3, 0]]), 0.5)
    assert kept[0].tolist() == [3, 2, 1] and sorted(dropped[0].tolist()) == [0, 4]
    assert [num_kept(256, 0.7), num_kept(180, 0.7), num_kept(126, 0.7), num_kept(192, 0.7)] == [180, 126, 89, 135]


def test_pruning_block_keeps_the_most_attended_tokens_with_their_positions():
    torch.manual_seed(1)
    block = PruningTokenBlock(32, 2, keep_ratio=0.6).eval()
    x = torch.randn(2, 3 + 10, 32)
    index = torch.stack([torch.randperm(40)[:10] for _ in range(2)])  # tokens of an already-pruned set
    out = block.forward_tokens(Tokens(x, 3, index))
    k = math.ceil(10 * 0.6)
    assert out.x.shape == (2, 3 + k, 32) and out.index.shape == (2, k)
    # the reference: explicit attention of the same weights, PPT's score, the top-k
    _, attn = block.attn.forward_with_attention(block.norm1(x))
    want = attn[:, :, :3, 3:].mean(1).sum(1).topk(k, dim=1).indices
    assert torch.equal(out.index, index.gather(1, want))
    # the kept tokens are the full block's tokens at those positions (attention on all, MLP on the kept)
    h = x + block.attn(block.norm1(x))
    kept = torch.cat((h[:, :3], h[:, 3:].gather(1, want.unsqueeze(-1).expand(-1, -1, 32))), 1)
    torch.testing.assert_close(out.x, kept + block.mlp(block.norm2(kept)), atol=1e-5, rtol=1e-5)


def test_position_embedding_follows_the_kept_tokens_in_later_layers():
    torch.manual_seed(2)
    stack = TokenStack(32, 3, 2, prune={0: 0.5}).eval()
    pos = torch.randn(1, 12, 32)
    tokens = Tokens(torch.randn(2, 2 + 12, 32), 2)
    after0 = stack.layers[0].forward_tokens(tokens)
    want = stack.layers[1].forward_tokens(Tokens(torch.cat(
        (after0.prefix, after0.visual + pos[0][after0.index]), 1), 2, after0.index))
    collect = []
    stack(tokens, pos, collect)
    torch.testing.assert_close(collect[1], want.x)
    assert collect[0].shape[1] == collect[2].shape[1] == 2 + 6


def test_ppt_schedule_and_ratio_one_equals_tokenpose_exactly():
    ppt = create_model("ppt_s_v1", **SMALL).eval()
    assert [r for _, r in pruning_layers(ppt)] == [0.7, 0.7, 0.7]
    assert [n for n, _ in pruning_layers(ppt)] == [f"transformer.stacks.0.layers.{i}" for i in (3, 6, 9)]
    tp = create_model("tokenpose_s_v1", **SMALL).eval()
    tp.load_state_dict(ppt.state_dict())  # the same parameters: PPT checkpoints are TokenPose-shaped
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        feats = ppt.forward_features(x)
        assert feats.visual_tokens.shape[1] == 7 and feats.index.shape == (2, 7)  # 16 -> 12 -> 9 -> 7
    ppt_big = create_model("ppt_s_v1", input_size=(192, 256), stem_blocks=1, depth=10, dim=32, num_heads=2)
    with torch.no_grad():
        f = ppt_big.eval().forward_features(torch.randn(1, 3, 256, 192))
    assert f.visual_tokens.shape[1] == 89 and f.index.shape == (1, 89)  # 256 -> 180 -> 126 -> 89
    assert set_keep_ratio(ppt, 1.0) == 3
    with torch.no_grad():
        assert torch.equal(ppt(x), tp(x))
    with pytest.raises(ValueError, match="keep_ratio"):
        TokenPruning((3,), 0.0)
    with pytest.raises(ValueError, match="past the last"):
        create_model("tokenpose_s_v1", pruning={"layers": [12], "keep_ratio": 0.5}, **SMALL)


def test_ppt_b_and_the_other_token_models_prune():
    for name, extra in (("ppt_b", {}), ("distilpose_s", {"pruning": {"layers": [1], "keep_ratio": 0.5}}),
                        ("sdpose_s_v1", {"pruning": {"layers": [1], "keep_ratio": 0.5}}),
                        ("sdpose_reg", {"pruning": {"layers": [1], "keep_ratio": 0.5}})):
        kw = dict(input_size=INPUT, dim=32, num_heads=2, depth=2 if name != "ppt_b" else 10, **extra)
        if name != "ppt_b":
            kw["stem_blocks"] = 1
        m = create_model(name, **kw).eval()
        with torch.no_grad():
            f = m.forward_features(torch.randn(1, 3, 64, 48))
        assert f.index is not None and f.visual_tokens.shape[1] < 16, name


def test_visual_at_and_distillation_of_a_pruned_student():
    v = torch.arange(2 * 6 * 3, dtype=torch.float32).reshape(2, 6, 3)
    pos = torch.tensor([[5, 0], [2, 3]])
    assert torch.equal(visual_at(v, None, pos), torch.stack([v[0, [5, 0]], v[1, [2, 3]]]))
    sub_index = torch.tensor([[4, 5, 0], [3, 1, 2]])
    sub = visual_at(v, None, sub_index)
    assert torch.equal(visual_at(sub, sub_index, pos), visual_at(v, None, pos))
    with pytest.raises(ValueError, match="not among"):
        visual_at(sub, sub_index, torch.tensor([[1, 0], [0, 1]]))

    from slimpose.distillation.distiller import StudentOutputs, TeacherOutputs
    from slimpose.distillation.distilpose import TokenTerm
    from slimpose.models.base import TokenFeatures

    teacher = TokenFeatures(torch.zeros(2, 1, 3), v, torch.zeros(2, 1, 3))
    student = TokenFeatures(torch.zeros(2, 1, 3), visual_at(v, None, pos) + 1.0, torch.zeros(2, 1, 3), pos)
    loss = TokenTerm(1.0, "visual")(StudentOutputs(None, student), TeacherOutputs(None, teacher), {})
    assert loss.item() == pytest.approx(1.0)  # the teacher's tokens at the student's kept positions


def test_sdpose_cycles_carry_positions_and_the_cycle_token_term_uses_them():
    from slimpose.distillation.distiller import StudentOutputs
    from slimpose.distillation.sdpose import CycleTokenTerm

    m = create_model("sdpose_s_v1", pruning={"layers": [0], "keep_ratio": 0.5}, depth=1, **SMALL).eval()
    cycles = m.forward_cycles(torch.randn(2, 3, 64, 48))
    assert [c[2].shape[1] for c in cycles] == [8, 4] and cycles[1][3].shape == (2, 4)
    term = CycleTokenTerm(1.0, "visual")
    got = term(StudentOutputs(cycles[0][0], None, cycles, 0), None, {})
    want = torch.nn.functional.mse_loss(visual_at(cycles[0][2], cycles[0][3], cycles[1][3]), cycles[1][2])
    torch.testing.assert_close(got, want)


# ------------------------------------------------------------------------------------------- EViTPose

VIT_SMALL = dict(input_size=INPUT, dim=32, num_heads=2, depth=4, prune_layers=(1, 2))  # 4x3 = 12 patches


def test_evitpose_ratio_one_is_vitpose_with_joint_tokens():
    m = create_model("evitpose_s", keep_ratio=1.0, **VIT_SMALL).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        want = ViTPoseBackbone.forward(m.backbone, x, prefix=m.backbone.joint_tokens)
        assert torch.equal(m.backbone(x), want)
    # a (converted) ViTPose checkpoint loads into EViTPose: only the joint tokens are new, and reported
    from slimpose.convert import convert_state_dict
    from slimpose.engine.builders import layer_decay_groups

    vit = create_model("vitpose_s", input_size=INPUT, dim=32, num_heads=2, depth=4).eval()
    state, report = convert_state_dict(vit.state_dict(), "vitpose", m)
    assert report.ok and report.initialised == ["backbone.joint_tokens"], report.format()
    m.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert torch.equal(m.backbone(x), ViTPoseBackbone.forward(vit.backbone, x, prefix=m.backbone.joint_tokens))
    # layer-wise decay: the joint tokens are embeddings (layer 0, no weight decay), as ViT's cls_token
    groups = layer_decay_groups(m, lr=1.0, weight_decay=0.1, rate=0.5)
    home = next(g for g in groups if any(p is m.backbone.joint_tokens for p in g["params"]))
    assert home["weight_decay"] == 0.0 and home["lr"] == 0.5 ** 5


def test_evitpose_prunes_fills_the_full_grid_and_exports():
    m = create_model("evitpose_s", keep_ratio=0.5, **VIT_SMALL).eval()
    assert [type(b) is JointPruningBlock for b in m.backbone.blocks] == [False, True, True, False]
    x = torch.randn(2, 3, 64, 48)
    tokens = Tokens(torch.cat((m.backbone.joint_tokens.expand(2, -1, -1), m.backbone.embed(x)), 1), 17)
    with torch.no_grad():
        tokens = tokens.with_x(m.backbone.blocks[0](tokens.x))
        tokens, left1 = m.backbone.blocks[1].forward_tokens(tokens)
        tokens, left2 = m.backbone.blocks[2].forward_tokens(tokens)
    assert tokens.visual.shape[1] == 3 and left1[0].shape[1] == 6 and left2[0].shape[1] == 3  # 12 -> 6 -> 3
    every = torch.cat((tokens.index, left1[1], left2[1]), 1).sort(1).values
    assert torch.equal(every, torch.arange(12).expand(2, 12))  # every grid position exactly once
    # fill='zero': the pruned positions of the pre-norm grid are zero; fill='leaving': their leaving values
    m.backbone.fill = "zero"
    with torch.no_grad():
        grid = m.backbone.full_grid(tokens, [left1, left2])
        assert grid.gather(1, left1[1].unsqueeze(-1).expand(-1, -1, 32)).abs().sum() == 0
        m.backbone.fill = "leaving"
        grid = m.backbone.full_grid(tokens, [left1, left2])
        torch.testing.assert_close(grid.gather(1, left1[1].unsqueeze(-1).expand(-1, -1, 32)), left1[0])
        assert m(x).shape == (2, 17, 16, 12)
    # leaving update: 'none' leaves the pruned patches as the attention left them
    blk = m.backbone.blocks[1]
    blk.leave_update = "none"
    t0 = Tokens(torch.randn(2, 17 + 12, 32), 17)
    with torch.no_grad():
        _, (y_none, p_none) = blk.forward_tokens(t0)
        blk.leave_update = "joint"
        _, (y_joint, p_joint) = blk.forward_tokens(t0)
    assert torch.equal(p_none, p_joint) and not torch.allclose(y_none, y_joint)
    # the update is one attention of the leaving patches (queries) over the joint tokens (keys, values)
    # with the block's own weights, computed by hand
    with torch.no_grad():
        kept, _ = blk.forward_tokens(t0)
        a = blk.attn
        w, b = a.qkv.weight, a.qkv.bias
        q = blk.norm1(y_none) @ w[:32].T + b[:32]
        j = blk.norm1(kept.prefix)
        k, v = j @ w[32:64].T + b[32:64], j @ w[64:].T + b[64:]
        heads = lambda t: t.reshape(2, t.shape[1], 2, 16).transpose(1, 2)  # noqa: E731
        att = (heads(q) @ heads(k).transpose(-1, -2) * 16 ** -0.5).softmax(-1) @ heads(v)
        want = y_none + a.proj(att.transpose(1, 2).reshape(2, -1, 32))
    torch.testing.assert_close(y_joint, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="prune_layers"):
        EViTPoseBackbone(INPUT, 32, 4, 2, prune_layers=(4,))


@pytest.mark.parametrize("name,kw", [
    ("ppt_s_v1", dict(SMALL, depth=3, pruning={"layers": [0, 1], "keep_ratio": 0.6})),
    ("evitpose_s", dict(VIT_SMALL, keep_ratio=0.6)),
])
def test_pruned_models_export_to_onnx_with_equal_outputs(tmp_path, name, kw):
    pytest.importorskip("onnxruntime")
    from slimpose.export import export_onnx

    m = create_model(name, **kw).eval()
    report = export_onnx(m, tmp_path / "m.onnx")  # traced at batch 1, checked at batch 2 (dynamic batch)
    assert report["max_abs_diff"]["heatmaps"] < 1e-4
    report = export_onnx(m, tmp_path / "d.onnx", decode_in_graph=True)
    assert report["max_abs_diff"]["keypoints"] < 1e-3


def test_a_knowledge_token_before_the_joint_tokens_does_not_vote():
    m = create_model("evitpose_s", keep_ratio=0.5, **VIT_SMALL).eval()
    blk = m.backbone.blocks[1]
    t = torch.randn(2, 1 + 17 + 12, 32)
    with torch.no_grad():
        _, attn = blk.attend(Tokens(t, 18))
        kept, (_, dropped) = blk.forward_tokens(Tokens(t, 18))
    scores = attn[:, :, 1:18, 18:].mean(1).sum(1)  # the 17 joint rows only
    assert torch.equal(kept.index.sort(1).values, scores.topk(6, dim=1).indices.sort(1).values)
    assert kept.prefix.shape[1] == 18  # the knowledge token stays


def test_distilling_a_pruned_student_checks_the_grid_and_refuses_a_pruned_teacher():
    from slimpose.distillation.teacher import check_teacher_compatibility
    from slimpose.utils.io import SlimposeInputError

    student = create_model("distilpose_s", pruning={"layers": [0], "keep_ratio": 0.5}, depth=1, **SMALL)
    teacher = create_model("tokenpose_s_v1", depth=1, **SMALL)
    info = check_teacher_compatibility(student, teacher)
    assert info["num_visual_tokens"] == 8
    other_grid = create_model("tokenpose_s_v1", depth=1, **dict(SMALL, patch_size=(2, 2)))  # 48 tokens
    with pytest.raises(SlimposeInputError, match="grid"):
        check_teacher_compatibility(student, other_grid)
    pruned_teacher = create_model("ppt_s_v1", depth=1, **dict(SMALL, pruning={"layers": [0], "keep_ratio": 0.5}))
    with pytest.raises(SlimposeInputError, match="unpruned teacher"):
        check_teacher_compatibility(create_model("distilpose_s", depth=1, **SMALL), pruned_teacher)
