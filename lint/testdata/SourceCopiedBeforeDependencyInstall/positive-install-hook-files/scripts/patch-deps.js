console.log("patched")
