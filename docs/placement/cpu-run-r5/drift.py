# Reference step inside a bench trace: llama-s decode of one sequence, context < 400, right after
# a llama-s step (warm caches). Per policy/rate: count, median, share of >2x spikes, and the median
# per 15 s window (drift during the run).
import json,sys,statistics as st
for d in sys.argv[1:]:
  for r in (1,2):
   for pol in ("mux","spatial","temporal"):
    f=f"{d}/bench-{pol}-r{r}.jsonl"
    try: lines=open(f).read().split("\n")
    except FileNotFoundError: continue
    xs=[];prev=None
    for line in lines:
        if not line: continue
        e=json.loads(line); L=e["loads"]; ms={l["model"] for l in L}
        if len(L)==1 and L[0]["model"]=="llama-s" and L[0]["decodeBatch"]==1 and L[0]["prefillTokens"]==0 and L[0]["decodeContextSum"]<400 and prev=={"llama-s"}:
            xs.append((e["start"],e["executeSeconds"]*1e3))
        prev=ms
    if not xs: continue
    med=st.median(x for _,x in xs); sp=sum(1 for _,x in xs if x>2*med)/len(xs)
    w={}
    for t,x in xs: w.setdefault(int(t//15),[]).append(x)
    ws=" ".join(f"{st.median(v):.3f}" for k,v in sorted(w.items()) if len(v)>=20)
    print(f"{d.split('/')[-1]} r{r} {pol:8s} n={len(xs):5d} median {med:.3f} ms  spikes>2x {sp*100:4.1f}%  per-15s medians: {ws}")
