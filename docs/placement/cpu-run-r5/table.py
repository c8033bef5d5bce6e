# usage: table.py LABEL BENCH.json SIM-rate1.json SIM-rate2.json ... prints markdown rows + miss count
import json,sys
label,bench,*sims=sys.argv[1:]
b=json.load(open(bench))
sim={}
for f in sims:
    s=json.load(open(f))
    for r in s['runs']: sim[(round(s['totalRate'],3),r['policy'])]=r['overall']
miss=0;cells=0;worst=0
for r in b['runs']:
    key=(round(r['rate'],3),r['policy']); o=r['overall']; s=sim.get(key)
    if not s: continue
    row=[f"{r['rate']:g}",r['policy'],label]
    for k,scale,fmt in (('requestsPerSecond',1,'%.3f'),('ttftP50',1e3,'%.1f'),('tpotP50',1e3,'%.2f')):
        bv=o[k]*scale; sv=s[k]*scale; d=sv/bv-1
        if k!='requestsPerSecond':
            cells+=1; worst=max(worst,abs(d))
            if abs(d)>0.15: miss+=1
        ds=f"{d*100:+.0f}%"
        if abs(d)>0.15: ds=f"**{ds}**"
        row+= [fmt%bv, fmt%sv, ds]
    print("| "+" | ".join(row)+" |")
print(f"<!-- {label}: {miss} of {cells} p50 cells miss 15 %, worst {worst*100:.0f}% -->")
