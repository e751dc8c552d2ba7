import numpy as np, subprocess, sys
def frames(path, w, h, n=60):
    raw = subprocess.run(["ffmpeg","-v","error","-i",path,"-frames:v",str(n),"-f","rawvideo","-pix_fmt","rgb24","-"],capture_output=True).stdout
    return np.frombuffer(raw,np.uint8).reshape(-1,h,w,3).astype(np.float64)
for path,w,h in [("/work/shared/data/carphone_pristine.mp4",176,144),("/work/shared/data/bikes.mp4",640,272)]:
    f = frames(path,w,h)
    for b in (16,8):
        H=(h//b)*b; W=(w//b)*b
        x=f[:,:H,:W].reshape(f.shape[0],H//b,b,W//b,b,3).transpose(0,1,3,2,4,5).reshape(-1,b*b*3)
        mu=x.mean(0); xc=x-mu
        c=xc.T@xc/len(xc); ev=np.sort(np.linalg.eigvalsh(c))[::-1]
        tot=ev.sum()
        for k in ([64,96,128,160,192,256,320] if b==16 else [16,24,32,40,48,64,80]):
            mse=ev[k:].sum()/(b*b*3)
            print(path.split('/')[-1], b, k, "dims/val=%.3f"%(k/(b*b*3)), "psnr=%.2f"%(10*np.log10(255**2/mse)))
