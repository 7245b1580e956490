# weights: per-event sampling weights over the training split of every sample (weaver semantics).


rule weights:
    # Like tfds: the validation summaries stand for their samples' shards (see rules/ntuplize.smk),
    # so weights are computed only on data that passed validation.
    input:
        all_validations,
    output:
        weights=f"{RESULTS}/weights/pf.parquet",
        histograms=f"{RESULTS}/weights/pf_histograms.json",
        plot=report(
            f"{RESULTS}/weights/pf_weights.png",
            caption="../workflow/report/weights.rst",
            category="Sampling weights",
        ),
        provenance=f"{RESULTS}/weights/pf.provenance.json",
    params:
        shards=all_ntuples,
        cfg=section("weights"),
    log:
        f"{LOGS}/weights/pf.log",
    benchmark:
        f"{BENCH}/weights/pf.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "colliderflow weights {params.shards} --params {params.cfg:q} -o {output.weights}"
        " --histograms {output.histograms} --plot {output.plot} --provenance {output.provenance} > {log} 2>&1"
