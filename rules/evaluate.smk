# evaluate: predictions on the test split, then metrics, figures and the headline summary; one pair of rules
# for the particle-flow model, one for the taggers (their outputs differ, so the model wildcard tells them apart).
from colliderflow.evaluate.figures import PF_PLOTS, TAGGER_PLOTS  # names only: no plotting at parse time


rule predict:
    wildcard_constraints:
        model=MODEL,
    input:
        model=f"{RESULTS}/models/{{model}}/model.pt",
        tfds=all_tfds,
    output:
        f"{RESULTS}/eval/{{model}}/predictions.parquet",
    params:
        **predict_params(),
    log:
        f"{LOGS}/predict/{{model}}.log",
    benchmark:
        f"{BENCH}/predict/{{model}}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpus_for(PREDICT["device"]),
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow predict --model-dir {params.model_dir} --tfds {input.tfds} --split test -o {output}"
        " --device {params.device} --precision {params.precision} > {log} 2>&1"


rule evaluate:
    wildcard_constraints:
        model=MODEL,
    input:
        predictions=f"{RESULTS}/eval/{{model}}/predictions.parquet",
        metrics=f"{RESULTS}/models/{{model}}/metrics.jsonl",
    output:
        summary=report(
            f"{RESULTS}/eval/{{model}}/summary.json",
            caption="../workflow/report/summary.rst",
            category="Summary",
        ),
        **{
            name: report(
                f"{RESULTS}/eval/{{model}}/plots/{name}.png",
                caption=f"../workflow/report/{name}.rst",
                category="Evaluation",
                subcategory="{model}",
            )
            for name in PF_PLOTS
        },
    params:
        **evaluate_params(),
    log:
        f"{LOGS}/evaluate/{{model}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow evaluate --predictions {input.predictions} --metrics-log {input.metrics}"
        " --params {params.cfg:q} --summary {output.summary} --plots-dir {params.plots_dir} > {log} 2>&1"


rule predict_tagger:
    wildcard_constraints:
        model="|".join(TAGGERS) or "^$",
    input:
        model=f"{RESULTS}/models/{{model}}/model.pt",
        test=local(f"{JETSET}/test"),
    output:
        f"{RESULTS}/eval/{{model}}/predictions.parquet",
    params:
        **predict_params(),
    log:
        f"{LOGS}/predict/{{model}}.log",
    benchmark:
        f"{BENCH}/predict/{{model}}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpus_for(PREDICT["device"]),
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow predict-tagger --model-dir {params.model_dir} {input.test} -o {output}"
        " --device {params.device} --precision {params.precision} > {log} 2>&1"


rule evaluate_tagger:
    wildcard_constraints:
        model="|".join(TAGGERS) or "^$",
    input:
        predictions=f"{RESULTS}/eval/{{model}}/predictions.parquet",
        metrics=f"{RESULTS}/models/{{model}}/metrics.jsonl",
    output:
        summary=report(
            f"{RESULTS}/eval/{{model}}/summary.json",
            caption="../workflow/report/tagging_summary.rst",
            category="Summary",
        ),
        **{
            name: report(
                f"{RESULTS}/eval/{{model}}/plots/{name}.png",
                caption=f"../workflow/report/tagging_{name}.rst",
                category="Jet tagging",
                subcategory="{model}",
            )
            for name in TAGGER_PLOTS
        },
    params:
        **evaluate_tagger_params(),
    log:
        f"{LOGS}/evaluate/{{model}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow evaluate-tagger --predictions {input.predictions} --metrics-log {input.metrics}"
        " --params {params.cfg:q} --summary {output.summary} --plots-dir {params.plots_dir} > {log} 2>&1"
