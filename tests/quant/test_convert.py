import pytest
import torch
from torch import nn

from helpers.models import NestedClassifier
from lightning_hybrid.models import GPT, GPTConfig
from lightning_hybrid.quant import BitLinear, bit_linears, convert


def test_convert_nested_module_default_rule_and_honest_count():
    model = NestedClassifier()
    report = convert(model)
    # 2 encoders x 3 linears converted; the classifier head is kept; the embedding is no Linear.
    assert report.total == 7
    assert sorted(report.converted) == sorted(
        f"backbone.{i}.{n}" for i in range(2) for n in ("layers.0", "layers.2", "gate.proj")
    )
    assert report.skipped == {"classifier": "output head (default exclude rule)"}
    assert str(report) == "converted 6 of 7 linear layers, skipped 1"
    assert isinstance(model.backbone[1].gate["proj"], BitLinear)
    assert type(model.classifier) is nn.Linear


def test_convert_keeps_optimizer_parameters_valid():
    model = NestedClassifier()
    before = {n: p for n, p in model.named_parameters()}
    convert(model)
    after = dict(model.named_parameters())
    assert before.keys() == after.keys()
    assert all(before[n] is after[n] for n in before)


def test_convert_is_idempotent():
    model = NestedClassifier()
    convert(model)
    again = convert(model)
    assert again.converted == [] and len(again.already) == 6
    assert str(again) == "converted 0 of 7 linear layers, skipped 1 (6 already quantized)"


def test_include_exclude_patterns():
    model = NestedClassifier()
    report = convert(model, include="backbone.0.*", exclude=["*.gate.*"])
    assert sorted(report.converted) == ["backbone.0.layers.0", "backbone.0.layers.2"]
    assert report.skipped["backbone.0.gate.proj"] == "matched by exclude"
    assert report.skipped["backbone.1.layers.0"] == "not matched by include"
    # An explicit exclude replaces the default rule: the head is converted too.
    model = NestedClassifier()
    assert "classifier" in convert(model, exclude=[]).converted


def test_pattern_that_matches_nothing_warns():
    with pytest.warns(UserWarning, match="`exclude` pattern 'decoder.*' matches no nn.Linear layer"):
        convert(NestedClassifier(), exclude=["decoder.*"])


def test_filter_fn_sees_module_and_name():
    seen = []
    report = convert(NestedClassifier(), filter_fn=lambda m, n: seen.append((type(m), n)) or m.in_features == 16)
    assert all(t is nn.Linear for t, _ in seen)
    assert "backbone.0.layers.2" not in report.converted  # in_features 32
    assert report.skipped["backbone.0.layers.2"] == "rejected by filter_fn"


def test_tied_head_counts_as_embedding():
    model = GPT(GPTConfig(vocab_size=11, n_layer=1, n_embd=8, n_head=2, block_size=4))
    model.add_module("extra", nn.Linear(8, 11, bias=False))
    model.extra.weight = model.tok_emb.weight
    report = convert(model)
    assert report.skipped["extra"] == "weight tied to an nn.Embedding (default exclude rule)"
    assert report.skipped["lm_head"] == "output head (default exclude rule)"


def test_multihead_attention_out_proj_is_skipped_with_reason():
    model = nn.Sequential(nn.MultiheadAttention(8, 2), nn.Linear(8, 8))
    report = convert(model)
    assert report.converted == ["1"]
    assert "nn.MultiheadAttention" in report.skipped["0.out_proj"]


def test_model_without_linear_is_an_error():
    with pytest.raises(ValueError, match="Sequential has no nn.Linear layer: there is nothing to quantize"):
        convert(nn.Sequential(nn.Conv1d(2, 2, 1), nn.ReLU()))


def test_everything_filtered_out_is_an_error():
    selected_none = r"No nn.Linear layer of NestedClassifier was selected.*include='nothing\*'"
    with pytest.raises(ValueError, match=selected_none), pytest.warns(UserWarning, match="matches no nn.Linear"):
        convert(NestedClassifier(), include="nothing*")


def test_bad_pattern_type_is_an_error():
    with pytest.raises(ValueError, match="`include` must be a pattern string or a list of them, got"):
        convert(NestedClassifier(), include=[3])


def test_bf16_weights_convert_and_run():
    model = NestedClassifier().to(torch.bfloat16)
    convert(model)
    out = model(torch.randn(4, 16, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    out.float().sum().backward()
    assert all(
        p.grad is not None and p.grad.dtype == torch.bfloat16
        for p in bit_linears(model)["backbone.0.layers.0"].parameters()
    )


def test_transformer_encoder_fast_path_cannot_bypass_quantized_layers():
    # nn.TransformerEncoderLayer's fused eval path reads linear1/linear2 weights directly; after
    # conversion the layer must compute with the quantized weights. Oracle: the same layer in
    # training mode (dropout 0), which never takes the fused path.
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
    convert(layer, exclude=[])
    x = torch.randn(3, 5, 16)
    reference = layer.train()(x).detach()
    with torch.no_grad():
        torch.testing.assert_close(layer.eval()(x), reference, rtol=1e-5, atol=1e-5)


def test_bit_linears_still_imports_from_its_former_module():
    from lightning_hybrid.quant.convert import bit_linears as old
    from lightning_hybrid.quant.linear import bit_linears

    assert old is bit_linears


# The default head rule on the module trees the libraries users bring build (names as torchvision 0.28
# and timm 1.0 register them; the layers are smaller).
def _resnet_like():
    model = nn.Module()
    model.layer1 = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten())
    model.fc = nn.Linear(8, 10)  # torchvision's ResNet: the last module, named fc
    return model


def _vgg_like():
    model = nn.Module()
    model.features = nn.Conv2d(3, 8, 3)
    layers = [nn.Linear(8, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 10)]
    model.classifier = nn.Sequential(*layers)  # torchvision's VGG: classifier.0, .3 hidden, .6 the head
    return model


def _convnext_like():
    model, head = nn.Module(), nn.Module()
    model.stages = nn.Sequential(nn.Linear(8, 8))
    head.norm, head.fc = nn.LayerNorm(8), nn.Linear(8, 10)  # timm's NormMlpClassifierHead
    model.head = head
    return model


def _hidden_fc():
    model = nn.Module()
    model.block = nn.Module()
    model.block.fc = nn.Linear(8, 8)  # an MLP's hidden layer named fc: not the last Linear
    model.output = nn.Linear(8, 10)
    return model


class _HubLike(nn.Module):
    """A transformers-style model whose head has no head name: get_output_embeddings() says which it is."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.vocab_projection = nn.Linear(8, 50)

    def get_output_embeddings(self):
        return self.vocab_projection


@pytest.mark.parametrize(
    ("build", "kept", "converted"),
    [
        (_vgg_like, "classifier.6", ["classifier.0", "classifier.3"]),
        (_convnext_like, "head.fc", ["stages.0"]),
        (_hidden_fc, "output", ["block.fc"]),
        (_HubLike, "vocab_projection", ["body"]),
    ],
    ids=["torchvision-vgg", "timm-convnext", "hidden-fc", "get_output_embeddings"],
)
def test_the_default_rule_keeps_the_heads_of_the_libraries_users_bring(build, kept, converted):
    model = build()
    report = convert(model)
    assert kept in report.skipped and "default exclude rule" in report.skipped[kept]
    assert sorted(report.converted) == converted
    assert type(model.get_submodule(kept)) is nn.Linear


def test_a_resnets_only_linear_is_its_head_so_nothing_is_left_to_convert():
    assert "fc" in convert(_resnet_like(), exclude=[]).converted  # the rule, not the layer, kept it
    with pytest.raises(ValueError, match="skipped fc: the model.s last Linear, named fc"):
        convert(_resnet_like())


def test_a_hugging_face_llama_keeps_its_head():
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
    )
    model = transformers.LlamaForCausalLM(config)
    report = convert(model)
    assert list(report.skipped) == ["lm_head"] and len(report.converted) == 7  # q k v o, gate up down


def test_a_bert_encoder_keeps_every_layer_its_blocks_name_output_converted():
    # BERT names a hidden projection of every block `...output.dense`: the head rule must not take it
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
    )
    report = convert(transformers.BertModel(config))
    assert report.skipped == {} and report.total == len(report.converted) == 2 * 6 + 1  # q k v o, in, out; pooler
